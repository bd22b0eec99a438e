"""Writing H.264 MP4 files from BGR frames, joining them, and checking what a file holds.

- `Mp4Writer` pipes raw bgr24 frames into ffmpeg (libx264, preset veryfast, yuv420p, sizes padded
  to even, `+faststart` so the `moov` box comes first and players can start before the end).
  It writes to a temporary name beside the target and renames it into place on `close()`, so a
  reader never sees half a file.
- `concat_mp4` joins parts made alike (same size, codec and rate) without re-encoding.
- `mp4_facts` says what a file holds (codec, size, frames counted by decoding, box order).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO

import numpy as np

from sluice.video.tools import ffmpeg_exe

_GLOBAL_OPTIONS = ("-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y")


def _temporary_path(path: str) -> str:
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.tmp-{secrets.token_hex(4)}")


def _last_lines(text: str, count: int = 3) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    return "; ".join(lines[-count:]) or "no message"


class Mp4Writer:
    """Encodes BGR uint8 frames into an H.264 MP4 at `path`; a context manager.

    Frames of another size are resized to width x height; odd sizes are padded to even (H.264
    4:2:0 needs even sizes), so the file's size is (width + width % 2) x (height + height % 2).
    """

    def __init__(self, path: str | os.PathLike[str], width: int, height: int, fps: float) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"frame size must be positive, not {width}x{height}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, not {fps}")
        import ffmpeg

        self.path = os.fspath(path)
        self.width = int(width)
        self.height = int(height)
        self.fps = float(fps)
        self.frames_written = 0
        self._temporary = _temporary_path(self.path)
        rate = repr(self.fps)
        stream = ffmpeg.input(
            "pipe:", format="rawvideo", pix_fmt="bgr24", s=f"{self.width}x{self.height}", framerate=rate
        )
        stream = stream.filter("pad", "ceil(iw/2)*2", "ceil(ih/2)*2")
        output = stream.output(
            self._temporary,
            format="mp4",
            vcodec="libx264",
            preset="veryfast",
            pix_fmt="yuv420p",
            movflags="+faststart",
            r=rate,
        )
        command = ffmpeg.compile(output, cmd=[ffmpeg_exe(), *_GLOBAL_OPTIONS])
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._stderr: list[bytes] = []
        assert self._process.stderr is not None
        self._stderr_thread = threading.Thread(
            target=self._drain, args=(self._process.stderr,), name="ffmpeg-encode-stderr", daemon=True
        )
        self._stderr_thread.start()
        self._closed = False

    def _drain(self, stderr: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for chunk in iter(lambda: stderr.read(65536), b""):
                self._stderr.append(chunk)

    def _message(self) -> str:
        return _last_lines(b"".join(self._stderr).decode("utf-8", "replace"))

    def write(self, image: np.ndarray) -> None:
        """Appends one BGR uint8 frame (H x W x 3; grayscale H x W is accepted too)."""
        if self._closed:
            raise RuntimeError("the writer is closed")
        frame = np.asarray(image)
        if frame.dtype != np.uint8:
            raise ValueError(f"frames must be uint8, not {frame.dtype}")
        if frame.ndim == 2:
            frame = np.repeat(frame[:, :, None], 3, axis=2)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be H x W x 3 BGR, not {frame.shape}")
        if frame.shape[:2] != (self.height, self.width):
            import cv2

            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).data)
        except (BrokenPipeError, OSError) as error:
            self._process.wait()
            self._stderr_thread.join(timeout=10)
            self._discard()
            raise RuntimeError(f"ffmpeg stopped encoding {self.path}: {self._message()}") from error
        self.frames_written += 1

    def close(self) -> int:
        """Finishes the file and moves it into place; returns the number of frames written."""
        if self._closed:
            return self.frames_written
        self._closed = True
        assert self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self._process.stdin.close()
        returncode = self._process.wait()
        self._stderr_thread.join(timeout=10)
        if returncode != 0:
            self._discard()
            raise RuntimeError(f"ffmpeg failed to encode {self.path}: {self._message()}")
        os.replace(self._temporary, self.path)
        return self.frames_written

    def abort(self) -> None:
        """Stops without writing the file."""
        if self._closed:
            return
        self._closed = True
        if self._process.poll() is None:
            self._process.kill()
        with contextlib.suppress(Exception):
            assert self._process.stdin is not None
            self._process.stdin.close()
        self._process.wait()
        self._stderr_thread.join(timeout=10)
        self._discard()

    def _discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._temporary)

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _run(command: list[str], what: str) -> None:
    completed = subprocess.run(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    if completed.returncode != 0:
        message = _last_lines(completed.stderr.decode("utf-8", "replace"))
        raise RuntimeError(f"ffmpeg failed to {what}: {message}")


def concat_mp4(parts: Sequence[str | os.PathLike[str]], out_path: str | os.PathLike[str]) -> None:
    """Joins MP4 parts made alike into `out_path` without re-encoding (moov first)."""
    if not parts:
        raise ValueError("nothing to join")
    target = os.fspath(out_path)
    temporary = _temporary_path(target)
    exe = ffmpeg_exe()
    options = ["-map", "0:v", "-c", "copy", "-movflags", "+faststart", "-f", "mp4", temporary]
    try:
        if len(parts) == 1:
            _run([exe, *_GLOBAL_OPTIONS, "-i", os.fspath(parts[0]), *options], f"copy {parts[0]}")
        else:
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
                for part in parts:
                    quoted = os.path.abspath(os.fspath(part)).replace("'", "'\\''")
                    listing.write(f"file '{quoted}'\n")
            try:
                command = [exe, *_GLOBAL_OPTIONS, "-f", "concat", "-safe", "0", "-i", listing.name, *options]
                _run(command, f"join {len(parts)} parts into {target}")
            finally:
                os.remove(listing.name)
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)


@dataclass
class MediaFacts:
    """What an MP4 file holds (see `mp4_facts`)."""

    codec: str
    width: int
    height: int
    frames: int
    fps: float
    moov_before_mdat: bool


def _top_level_boxes(path: str) -> list[str]:
    """The types of an MP4's top-level boxes, in file order (reads only their headers)."""
    boxes: list[str] = []
    size_of_file = os.path.getsize(path)
    with open(path, "rb") as file:
        offset = 0
        while offset + 8 <= size_of_file:
            file.seek(offset)
            header = file.read(8)
            if len(header) < 8:
                break
            size = int.from_bytes(header[:4], "big")
            kind = header[4:8].decode("latin-1")
            if size == 1:
                large = file.read(8)
                if len(large) < 8:
                    break
                size = int.from_bytes(large, "big")
            elif size == 0:
                size = size_of_file - offset
            if size < 8:
                break
            boxes.append(kind)
            offset += size
    return boxes


def mp4_facts(path: str | os.PathLike[str]) -> MediaFacts:
    """Codec, size and rate of the first video stream, its frames (decoded and counted), box order."""
    import av

    filename = os.fspath(path)
    with av.open(filename) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        width = int(stream.codec_context.width)
        height = int(stream.codec_context.height)
        rate = stream.average_rate or stream.guessed_rate
        frames = sum(1 for _ in container.decode(stream))
    boxes = _top_level_boxes(filename)
    moov_before_mdat = "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat")
    return MediaFacts(
        codec=codec,
        width=width,
        height=height,
        frames=frames,
        fps=float(rate) if rate else 0.0,
        moov_before_mdat=moov_before_mdat,
    )


__all__ = ["MediaFacts", "Mp4Writer", "concat_mp4", "mp4_facts"]
