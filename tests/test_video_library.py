"""The video library against the real ffmpeg: probing, sampling, decoding windows, encoding."""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sluice.video.decode import read_frames
from sluice.video.encode import Mp4Writer, concat_mp4, mp4_facts
from sluice.video.frame_index import FrameIndex, frame_index_name
from sluice.video.probe import NotAVideo, VideoProbe, probe_video
from sluice.video.sampling import Segment, owned_and_warmup, plan_segments, selected_frames
from sluice.video.tools import cuda_decoding_available, ffmpeg_exe
from tests.video_fixtures import make_bad_videos, make_test_video


@dataclass(frozen=True)
class Case:
    """A test video and what probing it must find."""

    name: str
    options: dict[str, Any]
    width: int
    height: int
    frames: int
    duration_s: float
    rotation: int = 0
    sar: str = "1:1"
    vfr: bool = False


CASES = (
    Case("640x480@30.mp4", {"width": 640, "height": 480, "fps": 30, "duration_s": 2}, 640, 480, 60, 2.0),
    Case("1280x720@60.mp4", {"width": 1280, "height": 720, "fps": 60, "duration_s": 2}, 1280, 720, 120, 2.0),
    Case("320x240@24.mp4", {"width": 320, "height": 240, "fps": 24, "duration_s": 2}, 320, 240, 48, 2.0),
    Case("25fps.mkv", {"width": 320, "height": 240, "fps": 25, "duration_s": 3}, 320, 240, 75, 3.0),
    # 60 frames in the first second, then every third of the 180 left: 120 frames over 4 s.
    Case(
        "vfr.mp4",
        {"width": 320, "height": 240, "fps": 60, "duration_s": 4, "vfr": True},
        320, 240, 120, 4.0, vfr=True,
    ),
    Case(
        "rotated.mp4",
        {"width": 320, "height": 240, "fps": 30, "duration_s": 2, "rotation": 90},
        240, 320, 60, 2.0, rotation=90,
    ),
    Case(
        "odd.mp4",
        {"width": 321, "height": 241, "fps": 30, "duration_s": 2, "odd": True},
        321, 241, 60, 2.0,
    ),
    Case(
        "sar.mp4",
        {"width": 640, "height": 480, "fps": 25, "duration_s": 2, "sar": Fraction(4, 3)},
        853, 480, 50, 2.0, sar="4:3",
    ),
)  # fmt: skip
CASE_NAMES = [case.name for case in CASES]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, VideoProbe]]:
    folder = tmp_path_factory.mktemp("videos")
    made = {}
    for case in CASES:
        path = make_test_video(folder / case.name, **case.options)
        made[case.name] = (path, probe_video(path))
    return made


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_bad_videos(tmp_path_factory.mktemp("bad"))


# -- (a) probing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_NAMES)
def test_probe_facts(case: Case, videos: dict[str, tuple[Path, VideoProbe]]) -> None:
    _path, probe = videos[case.name]
    info = probe.info
    assert (info.width, info.height) == (case.width, case.height)
    assert info.frame_count == case.frames == len(probe.index)
    assert info.duration_s == pytest.approx(case.duration_s, abs=1e-6)
    assert info.fps == pytest.approx(case.frames / case.duration_s, rel=1e-6)
    assert info.codec == "h264"
    assert info.rotation == case.rotation
    assert info.sample_aspect_ratio == case.sar
    assert info.variable_frame_rate is case.vfr
    assert info.start_time_s == 0.0
    coded = (case.options["width"], case.options["height"])
    assert (info.coded_width, info.coded_height) == coded
    times = probe.index.times_s
    assert times[0] == 0.0 and bool(np.all(np.diff(times) > 0))


def test_probe_start_time_and_time_base_of_mpeg_ts(tmp_path: Path) -> None:
    path = make_test_video(tmp_path / "clip.ts", width=160, height=120, fps=25, duration_s=1, audio=True)
    probe = probe_video(path)
    assert probe.index.time_base == Fraction(1, 90000)
    assert probe.info.start_time_s > 1.0  # MPEG-TS timestamps start at 1.4 s
    assert probe.info.start_time_s == probe.index.start_s
    assert probe.info.frame_count == 25
    assert probe.index.times_s[0] == 0.0


def test_frame_index_round_trip() -> None:
    index = FrameIndex(time_base=Fraction(1, 15360), pts=np.array([0, 512, 1024, 2048], dtype=np.int64))
    data = index.to_json_bytes()
    assert data.startswith(b'{"version":1,"time_base":[1,15360],"pts":[0,512,1024,2048]')
    again = FrameIndex.from_json_bytes(data)
    assert again == index
    assert again.index_of_pts(1024) == 2 and again.index_of_pts(1000) is None
    assert again.times_s.tolist() == [0.0, 512 / 15360, 1024 / 15360, 2048 / 15360]
    assert frame_index_name("clips/a.mp4") == ".sluice/frames/clips/a.mp4.json"
    with pytest.raises(ValueError):
        FrameIndex.from_json_bytes(b'{"version":2,"time_base":[1,2],"pts":[]}')


# -- (b) refused files ----------------------------------------------------------------------------

REFUSALS = {
    "empty.mp4": "empty file",
    "notes.mp4": "not a video: FFmpeg cannot read it (",
    "audio.mp4": "not a video: it has no video stream (audio only)",
    "truncated-header.mp4": "not a video: FFmpeg cannot read it (",
    "unknown-codec.mkv": "cannot decode its unknown video: FFmpeg has no decoder for it",
    "picture.mp4": "not a video: it is a jpeg image",
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_bad_videos_are_refused_with_reasons(name: str, bad_videos: dict[str, Path]) -> None:
    with pytest.raises(NotAVideo) as refused:
        probe_video(bad_videos[name])
    reason = str(refused.value)
    assert reason.startswith(REFUSALS[name]), reason
    assert "\n" not in reason and str(bad_videos[name]) not in reason


def test_missing_file_is_not_a_refusal(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe_video(tmp_path / "nothing.mp4")


# -- (c) decoding ---------------------------------------------------------------------------------


def _check_frames(frames: list[Any], probe: VideoProbe) -> None:
    indices = [frame.index for frame in frames]
    assert indices == sorted(set(indices))
    for frame in frames:
        assert frame.time_s == probe.index.times_s[frame.index]
        assert frame.image.shape == (probe.info.height, probe.info.width, 3)
        assert frame.image.dtype == np.uint8


@pytest.mark.parametrize("case", CASES, ids=CASE_NAMES)
def test_read_frames_at_5_fps(case: Case, videos: dict[str, tuple[Path, VideoProbe]]) -> None:
    path, probe = videos[case.name]
    with read_frames(str(path), probe.info, probe.index, max_fps=5) as stream:
        frames = list(stream)
    assert stream.error is None
    assert abs(len(frames) - case.duration_s * 5) <= 1
    _check_frames(frames, probe)
    expected = selected_frames(probe.index.times_s, 5)
    assert [frame.index for frame in frames] == expected.tolist()
    assert stream.frames_read == len(frames) and stream.unmatched_pts == 0


@pytest.mark.parametrize("name", ["640x480@30.mp4", "vfr.mp4", "rotated.mp4", "sar.mp4", "odd.mp4"])
def test_read_frames_at_full_rate_gives_every_frame(
    name: str, videos: dict[str, tuple[Path, VideoProbe]]
) -> None:
    path, probe = videos[name]
    with read_frames(str(path), probe.info, probe.index) as stream:
        frames = list(stream)
    assert stream.error is None
    assert [frame.index for frame in frames] == list(range(probe.info.frame_count))
    _check_frames(frames, probe)


@pytest.mark.parametrize("name", ["640x480@30.mp4", "vfr.mp4", "25fps.mkv", "rotated.mp4"])
def test_window_gives_the_predicted_frames(name: str, videos: dict[str, tuple[Path, VideoProbe]]) -> None:
    path, probe = videos[name]
    times = probe.index.times_s
    window = Segment(index=1, count=2, start_s=1.0, end_s=2.0, warmup_start_s=0.6, frames_total=5)
    owned, warmup = owned_and_warmup(times, 5, window)
    assert len(owned) == 5 and len(warmup) == 2
    with read_frames(str(path), probe.info, probe.index, start_s=1.0, end_s=2.0, max_fps=5) as stream:
        assert [frame.index for frame in stream] == owned.tolist()
    with read_frames(str(path), probe.info, probe.index, start_s=0.6, end_s=2.0, max_fps=5) as stream:
        frames = list(stream)
    assert [frame.index for frame in frames] == [*warmup.tolist(), *owned.tolist()]
    _check_frames(frames, probe)
    # The same window at full rate: every frame with 1.0 <= t < 2.0.
    with read_frames(str(path), probe.info, probe.index, start_s=1.0, end_s=2.0) as stream:
        indices = [frame.index for frame in stream]
    assert indices == np.flatnonzero((times >= 1.0) & (times < 2.0)).tolist()


def test_seeking_in_mpeg_ts_finds_every_window_frame(tmp_path: Path) -> None:
    # MPEG-TS has no index: ffmpeg's seek can land after the keyframe a window needs.
    path = make_test_video(
        tmp_path / "clip.ts", width=160, height=120, fps=25, duration_s=6, audio=True, keyframe_interval=50
    )
    probe = probe_video(path)
    for start in (2.0, 3.3, 4.5):
        owned, _ = owned_and_warmup(probe.index.times_s, 4, Segment(0, 1, start, start + 1, start, 0))
        with read_frames(str(path), probe.info, probe.index, start_s=start, end_s=start + 1, max_fps=4) as s:
            assert [frame.index for frame in s] == owned.tolist()
        assert s.error is None


def _ffmpeg_first_frame(path: Path, width: int, height: int) -> np.ndarray:
    """The first frame as ffmpeg itself shows it (autorotation on)."""
    command = [ffmpeg_exe(), "-loglevel", "error", "-i", str(path), "-frames:v", "1"]
    command += ["-f", "rawvideo", "-pix_fmt", "bgr24", "-"]
    raw = subprocess.run(command, capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_matches_ffmpeg_autorotation(rotation: int, tmp_path: Path) -> None:
    path = make_test_video(
        tmp_path / "turned.mp4", width=160, height=96, fps=10, duration_s=1, rotation=rotation
    )
    probe = probe_video(path)
    assert probe.info.rotation == rotation
    with read_frames(str(path), probe.info, probe.index) as stream:
        first = next(stream).image
    np.testing.assert_array_equal(first, _ffmpeg_first_frame(path, probe.info.width, probe.info.height))


def test_hwaccel_falls_back_to_the_cpu(videos: dict[str, tuple[Path, VideoProbe]]) -> None:
    path, probe = videos["vfr.mp4"]
    with read_frames(str(path), probe.info, probe.index, max_fps=5, hwaccel=True) as stream:
        frames = list(stream)
    assert stream.error is None
    assert [frame.index for frame in frames] == selected_frames(probe.index.times_s, 5).tolist()
    assert stream.hwaccel is cuda_decoding_available()


def test_closing_a_stream_early_is_not_an_error(videos: dict[str, tuple[Path, VideoProbe]]) -> None:
    path, probe = videos["1280x720@60.mp4"]
    stream = read_frames(str(path), probe.info, probe.index)
    assert next(stream).index == 0
    stream.close()
    assert stream.error is None and stream.frames_read == 1
    assert list(stream) == []


# -- (d) videos that break mid-stream ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["cut.mp4", "corrupt.mkv", "corrupt.ts"])
def test_broken_videos_give_frames_and_an_error(name: str, bad_videos: dict[str, Path]) -> None:
    probe = probe_video(bad_videos[name])
    assert probe.info.frame_count > 0
    with read_frames(str(bad_videos[name]), probe.info, probe.index) as stream:
        frames = list(stream)
    assert len(frames) > 0
    assert stream.error, f"{len(frames)} of {probe.info.frame_count} frames, no error"
    assert "\n" not in stream.error


# -- (e) encoding ---------------------------------------------------------------------------------


def _pattern(width: int, height: int, number: int) -> np.ndarray:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:, : (number * 7) % width] = (40, 160, 240)
    return image


def test_mp4_writer_pads_odd_sizes_and_puts_moov_first(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    with Mp4Writer(target, 321, 241, 10.0) as writer:
        for number in range(24):
            writer.write(_pattern(321, 241, number))
        writer.write(_pattern(160, 120, 99))  # another size: resized
    assert writer.close() == 25
    facts = mp4_facts(target)
    assert (facts.codec, facts.width, facts.height, facts.frames) == ("h264", 322, 242, 25)
    assert facts.fps == pytest.approx(10.0)
    assert facts.moov_before_mdat
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.mp4"]


def test_mp4_writer_leaves_nothing_when_aborted(tmp_path: Path) -> None:
    with pytest.raises(KeyError), Mp4Writer(tmp_path / "never.mp4", 64, 48, 5.0) as writer:
        writer.write(_pattern(64, 48, 1))
        raise KeyError("stop")
    assert list(tmp_path.iterdir()) == []


def test_concat_mp4_sums_the_parts(tmp_path: Path) -> None:
    parts = []
    for number, count in enumerate((10, 12, 8)):
        part = tmp_path / f"{number:05d}.mp4"
        with Mp4Writer(part, 160, 120, 15.0) as writer:
            for frame in range(count):
                writer.write(_pattern(160, 120, frame))
        parts.append(str(part))
    joined = tmp_path / "joined" / "video.mp4"
    joined.parent.mkdir()
    concat_mp4(parts, str(joined))
    facts = mp4_facts(joined)
    assert (facts.codec, facts.width, facts.height, facts.frames) == ("h264", 160, 120, 30)
    assert facts.moov_before_mdat
    assert sorted(path.name for path in joined.parent.iterdir()) == ["video.mp4"]
    single = tmp_path / "single.mp4"
    concat_mp4(parts[:1], str(single))
    assert mp4_facts(single).frames == 10


def test_default_ffmpeg_writes_moov_last(tmp_path: Path) -> None:
    path = make_test_video(tmp_path / "plain.mp4", width=64, height=48, fps=5, duration_s=1)
    assert not mp4_facts(path).moov_before_mdat


# -- (f) segments ---------------------------------------------------------------------------------


def _times(fps: float, duration_s: float) -> np.ndarray:
    """Frame times as a 1/15360 time base gives them (what x264 in mp4 writes)."""
    index = FrameIndex(
        Fraction(1, 15360), np.round(np.arange(0, duration_s, 1 / fps) * 15360).astype(np.int64)
    )
    return index.times_s


def _local_selection(times: np.ndarray, max_fps: float, start_s: float, end_s: float) -> list[int]:
    """What select picks inside one window only: its first frame, then each new bucket."""
    chosen: list[int] = []
    previous = math.nan
    for number in np.flatnonzero((times >= start_s) & (times < end_s)):
        bucket = math.floor(times[number] * max_fps + 1e-6)
        if math.isnan(previous) or bucket > previous:
            chosen.append(int(number))
            previous = bucket
    return chosen


VFR_TIMES = np.concatenate(
    [np.arange(0, 10, 1 / 60), 10 + np.arange(0, 30, 0.1), 55 + np.arange(0, 9, 1 / 24)]
)


@pytest.mark.parametrize(
    ("times", "max_fps", "segment_s", "warmup_s"),
    [
        (_times(30, 95), 5.0, 10.3, 2.0),
        (_times(29.97, 61), 2.0, 7.0, 1.25),
        (_times(60, 30), 0.0, 9.5, 0.5),
        (VFR_TIMES, 3.0, 4.0, 1.0),  # a gap from 40 s to 55 s longer than a segment
    ],
)
def test_plan_segments_cover_every_selected_frame_once(
    times: np.ndarray, max_fps: float, segment_s: float, warmup_s: float
) -> None:
    segments = plan_segments(times, max_fps, segment_s, warmup_s)
    selected = selected_frames(times, max_fps)
    assert len(segments) > 1
    assert [segment.index for segment in segments] == list(range(len(segments)))
    assert all(segment.count == len(segments) for segment in segments)
    assert segments[0].start_s == 0.0 and segments[-1].end_s == math.inf
    owned_all: list[int] = []
    for segment, following in zip(segments, [*segments[1:], None], strict=True):
        if following is not None:
            assert segment.end_s == following.start_s
        if max_fps > 0:
            for boundary in (segment.start_s, segment.warmup_start_s):
                assert boundary * max_fps == pytest.approx(round(boundary * max_fps), abs=1e-9)
        assert segment.warmup_start_s <= segment.start_s
        assert segment.warmup_start_s <= max(0.0, segment.start_s - warmup_s) + 1e-9
        owned, warmup = owned_and_warmup(times, max_fps, segment)
        assert len(owned) == segment.frames_total > 0
        assert set(warmup.tolist()) <= set(selected.tolist())
        assert all(times[warmup] < segment.start_s) and all(times[warmup] >= segment.warmup_start_s)
        owned_all.extend(owned.tolist())
    assert owned_all == selected.tolist()
    assert sum(segment.frames_total for segment in segments) == len(selected)


def test_segment_boundaries_keep_the_global_selection() -> None:
    times = _times(25, 60)
    for segment in plan_segments(times, 3.0, 7.0, 0.0):
        owned, _ = owned_and_warmup(times, 3.0, segment)
        assert _local_selection(times, 3.0, segment.start_s, segment.end_s) == owned.tolist()
    # A segment length that is not a whole number of buckets is rounded to one.
    lengths = {round(s.end_s - s.start_s, 9) for s in plan_segments(times, 3.0, 7.0, 0.0)[:-1]}
    assert lengths == {7.0}
    lengths = {round(s.end_s - s.start_s, 9) for s in plan_segments(times, 4.0, 7.1, 0.0)[:-1]}
    assert lengths == {7.0}


def test_short_video_is_one_segment() -> None:
    times = _times(30, 10)
    segments = plan_segments(times, 5.0, 10.0, 2.0)
    assert segments == [Segment(0, 1, 0.0, math.inf, 0.0, len(selected_frames(times, 5.0)))]
    assert len(selected_frames(times, 0)) == len(times) == 300
    assert len(selected_frames(times, 5.0)) == 50
