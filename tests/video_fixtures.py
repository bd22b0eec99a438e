"""Test videos made with the real ffmpeg (lavfi testsrc2), good and bad.

`make_test_video` encodes a clip with the properties a test needs (size, rate, variable rate,
rotation metadata, non-square pixels, odd sizes, an audio track); `make_bad_videos` writes files
that must be refused by probing, and files that probe fine but break while decoding.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

from sluice.video.tools import ffmpeg_exe

TEST_PATTERN = "testsrc2"


def _ffmpeg(*arguments: str) -> None:
    command = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *arguments]
    completed = subprocess.run(command, capture_output=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(command)}\n{completed.stderr.decode(errors='replace')}")


def make_test_video(
    path: str | os.PathLike[str],
    *,
    width: int,
    height: int,
    fps: float,
    duration_s: float,
    codec: str = "libx264",
    vfr: bool = False,
    rotation: int = 0,
    sar: Fraction | str | None = None,
    odd: bool = False,
    audio: bool = False,
    keyframe_interval: int | None = None,
) -> Path:
    """Encodes a test pattern clip of width x height (coded size) at `fps` for `duration_s`.

    - vfr: every frame of the first second, then every third one (`-fps_mode vfr`);
    - rotation: display-matrix rotation in degrees, set by remuxing (`-display_rotation`);
    - sar: sample aspect ratio of the coded picture (e.g. Fraction(4, 3) or "4/3");
    - odd: the size is odd (or either side is): the pattern is scaled to it and encoded 4:4:4,
      since H.264 4:2:0 needs even sizes;
    - audio: adds a sine tone (AAC);
    - keyframe_interval: x264's GOP length in frames (default: the encoder's).
    The container follows the path's suffix.
    """
    target = Path(path)
    odd = odd or width % 2 == 1 or height % 2 == 1
    source_w, source_h = (width + width % 2, height + height % 2) if odd else (width, height)
    source = f"{TEST_PATTERN}=size={source_w}x{source_h}:rate={fps}:duration={duration_s}"
    filters: list[str] = []
    if odd:
        filters.append(f"scale={width}:{height}")  # scale keeps the display aspect by changing SAR
    ratio = Fraction(1) if sar is None else Fraction(sar)
    if odd or sar is not None:
        filters.append(f"setsar={ratio.numerator}/{ratio.denominator}")
    if vfr:
        filters.append(r"select='lt(t\,1)+not(mod(n\,3))'")
    arguments = ["-f", "lavfi", "-i", source]
    if audio:
        arguments += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={duration_s}"]
    if filters:
        arguments += ["-vf", ",".join(filters)]
    arguments += ["-c:v", codec]
    if codec == "libx264":
        arguments += ["-preset", "veryfast"]
    arguments += ["-pix_fmt", "yuv444p" if odd else "yuv420p"]
    if keyframe_interval is not None:
        arguments += ["-g", str(keyframe_interval)]
    if vfr:
        arguments += ["-fps_mode", "vfr"]
    if audio:
        arguments += ["-c:a", "aac", "-shortest"]
    target.parent.mkdir(parents=True, exist_ok=True)
    if rotation % 360 == 0:
        _ffmpeg(*arguments, str(target))
        return target
    unrotated = target.with_name(f".unrotated-{target.name}")
    _ffmpeg(*arguments, str(unrotated))
    _ffmpeg("-display_rotation", str(rotation), "-i", str(unrotated), "-c", "copy", str(target))
    unrotated.unlink()
    return target


def _overwrite_middle(source: Path, target: Path, *, seed: int) -> Path:
    """A copy of `source` whose middle tenth (45% to 55%) is random bytes."""
    data = bytearray(source.read_bytes())
    start, end = int(len(data) * 0.45), int(len(data) * 0.55)
    data[start:end] = random.Random(seed).randbytes(end - start)
    target.write_bytes(bytes(data))
    return target


def make_bad_videos(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Writes the bad videos into `folder`; keys are their file names.

    Refused by probing:
    - `empty.mp4`: zero bytes;
    - `notes.mp4`: text;
    - `audio.mp4`: an AAC tone, no video stream;
    - `truncated-header.mp4`: the first 2 KB of an mp4 whose moov box is at the end.
    Probed fine, broken while decoding:
    - `cut.mp4`: a faststart mp4 (moov first) cut at 60% (the moov lists frames that are gone);
    - `corrupt.mkv`, `corrupt.ts`: random bytes over the middle tenth of the file.
    - `unknown-codec.mkv` (a codec id FFmpeg has no decoder for), `picture.mp4` (a JPEG): refused.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    videos: dict[str, Path] = {}

    empty = root / "empty.mp4"
    empty.write_bytes(b"")
    videos[empty.name] = empty

    notes = root / "notes.mp4"
    notes.write_text("Shopping list: milk, eggs, a video camera.\n" * 20)
    videos[notes.name] = notes

    audio = root / "audio.mp4"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(audio))
    videos[audio.name] = audio

    sources = root / ".sources"
    sources.mkdir(exist_ok=True)

    def clip(name: str) -> Path:
        return make_test_video(
            sources / name, width=320, height=240, fps=25.0, duration_s=4.0, keyframe_interval=25
        )

    moov_last = clip("moov-last.mp4")  # without +faststart, ffmpeg writes the moov box last
    truncated = root / "truncated-header.mp4"
    truncated.write_bytes(moov_last.read_bytes()[:2048])
    videos[truncated.name] = truncated

    faststart = sources / "faststart.mp4"
    _ffmpeg("-i", str(moov_last), "-c", "copy", "-movflags", "+faststart", str(faststart))
    cut = root / "cut.mp4"
    data = faststart.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    videos[cut.name] = cut

    mkv = clip("source.mkv")
    videos["corrupt.mkv"] = _overwrite_middle(mkv, root / "corrupt.mkv", seed=1)
    # A codec no FFmpeg decodes: the Matroska codec id of an H.264 track renamed (same length).
    unknown = root / "unknown-codec.mkv"
    unknown.write_bytes(mkv.read_bytes().replace(b"V_MPEG4/ISO/AVC", b"V_SLUICE/NOPE/X", 1))
    videos[unknown.name] = unknown
    picture = root / "picture.mp4"  # a JPEG photograph named like a video
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1", "-f", "mjpeg", str(picture))
    videos[picture.name] = picture
    ts = clip("source.ts")
    videos["corrupt.ts"] = _overwrite_middle(ts, root / "corrupt.ts", seed=2)
    shutil.rmtree(sources)
    return videos
