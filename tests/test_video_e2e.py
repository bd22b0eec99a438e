"""Video jobs end to end: the CLI against `sluice up`, real FFmpeg, a real detector and tracker.

One local stack serves the module; the tests run in order, as a user would: stage videos (bad
ones refused), sample them at 5 fps, track shapes across segment seams into an annotated MP4, and
kill the worker in the middle of a long video.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from sluice.video.encode import mp4_facts
from sluice.video.sampling import selected_frames
from sluice.video.synthetic import (
    SHAPES_CLASS_NAMES,
    SHAPES_INPUT_SIZE,
    ShapeTrack,
    write_moving_shapes,
    write_shapes_detector,
)
from tests.dashboard_stack import DashboardStack
from tests.local_stack import local_stack, sluice
from tests.video_fixtures import make_bad_videos, make_test_video

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
TRACK_SHAPES = ROOT / "examples" / "workflows" / "track-shapes.json"
FPS = 5.0
# name -> (width, height, fps, seconds, extra options of make_test_video)
SOURCES: dict[str, tuple[int, int, float, float, dict[str, Any]]] = {
    "vga-30.mp4": (640, 480, 30, 4.0, {}),
    "hd-60.mp4": (1280, 720, 60, 2.0, {}),
    "film-24.mp4": (320, 240, 24, 3.0, {}),
    "pal 25 #1.mp4": (320, 240, 25, 3.0, {}),
    "vfr.mp4": (320, 240, 60, 4.0, {"vfr": True}),
    "rotated.mp4": (320, 240, 30, 3.0, {"rotation": 90}),
    "odd.mp4": (321, 241, 25, 3.0, {"odd": True}),
    "anamorphic.mp4": (320, 240, 25, 3.0, {"sar": "4/3"}),
}
REFUSED = ("empty.mp4", "notes.mp4", "audio.mp4", "truncated-header.mp4", "unknown-codec.mkv", "picture.mp4")


@pytest.fixture(scope="module")
def state() -> Iterator[Path]:
    yield from local_stack("sluice-video-e2e-")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Test videos, bad videos, a shapes clip and the shapes detector."""
    root = tmp_path_factory.mktemp("media")
    clips = root / "clips"
    clips.mkdir()
    for name, (width, height, fps, seconds, extra) in SOURCES.items():
        make_test_video(clips / name, width=width, height=height, fps=fps, duration_s=seconds, **extra)
    bad = make_bad_videos(root / "bad")
    for name in (*REFUSED, "cut.mp4"):
        shutil.copy(bad[name], clips / name)
    (clips / "readme.txt").write_text("not a video")
    shapes = root / "shapes"
    shapes.mkdir()
    plan = write_moving_shapes(shapes / "shapes.mp4", width=640, height=360, fps=25.0, duration_s=12.0)
    (root / "plan.json").write_text(json.dumps([t.__dict__ for t in plan]))
    long = root / "long"
    long.mkdir()
    write_moving_shapes(long / "long.mp4", width=320, height=240, fps=25.0, duration_s=60.0)
    write_shapes_detector(root / "shapes.onnx")
    return root


def _stage(state: Path, folder: Path, batch: str) -> subprocess.CompletedProcess[str]:
    return sluice(
        state, "data-staging", "create-batch-of-videos", "--videos-dir", str(folder), "--batch-id", batch
    )


def _records(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines() if line]


def _source_times(path: Path) -> list[float]:
    """Every frame's time in seconds from the first frame, decoded by PyAV (not by Sluice)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
        base = float(stream.time_base)
    return [(p - pts[0]) * base for p in pts]


def _job_args(job: str, batch: str, *options: str) -> list[str]:
    """The CLI arguments of a track-shapes video job."""
    return [
        "batch-processing",
        "process-videos-with-workflow",
        "--workflow-id",
        "track-shapes",
        "--batch-id",
        batch,
        "--job-id",
        job,
        *options,
    ]


def _run_job(state: Path, job: str, batch: str, *options: str) -> subprocess.CompletedProcess[str]:
    return sluice(state, *_job_args(job, batch, "--max-video-fps", str(FPS), *options, "--wait"), check=False)


def _half_done_segment(state: Path, job: str) -> str | None:
    """'<task> at <done>/<total>' of a segment that is running and neither starting nor ending."""
    details = sluice(state, "batch-processing", "show-job-details", "--job-id", job, check=False).stdout
    for match in re.finditer(r"^(\S+-p\d+)\s+running\s+(\d+)/(\d+)", details, re.MULTILINE):
        if 0 < int(match[2]) < int(match[3]):
            return f"{match[1]} at {match[2]}/{match[3]}"
    return None


def _export(state: Path, job: str, target: Path) -> Path:
    sluice(state, "data-staging", "export-batch", "--batch-id", f"{job}-export", "--target-dir", str(target))
    return target


def test_stage_videos(state: Path, media: Path) -> None:
    out = _stage(state, media / "clips", "clips").stdout
    for name in REFUSED:
        assert re.search(rf"{re.escape(name)}.*not a decodable video", out), out
    assert "readme.txt" in out  # skipped, and said so
    assert f"{len(SOURCES) + 1} uploaded" in out, out
    again = _stage(state, media / "clips", "clips").stdout
    assert "0 uploaded" in again, again
    listing = sluice(state, "data-staging", "list-batch-content", "--batch-id", "clips").stdout
    assert "pal 25 #1.mp4" in listing and "h264" in listing, listing
    rotated = next(line for line in listing.splitlines() if line.startswith("rotated.mp4"))
    assert "240x320" in rotated and "90" in rotated, rotated
    for name in REFUSED:
        assert name not in listing


def test_register_model_and_workflow(state: Path, media: Path) -> None:
    sluice(
        state,
        "models",
        "register",
        "--model-id",
        "demo/shapes",
        "--file",
        str(media / "shapes.onnx"),
        "--task",
        "object-detection",
        "--class-names",
        ",".join(SHAPES_CLASS_NAMES),
        "--input-size",
        f"{SHAPES_INPUT_SIZE}x{SHAPES_INPUT_SIZE}",
        "--resize",
        "letterbox",
        "--channel-order",
        "rgb",
    )
    sluice(state, "workflows", "create", "--workflow-id", "track-shapes", "--file", str(TRACK_SHAPES))


def test_bad_job_options_are_one_clear_line(state: Path) -> None:
    cases = [
        (["--max-video-fps", "0"], "max video fps must be greater than 0"),
        (["--video-segment-seconds", "1"], "video segment seconds must be at least 5"),
    ]
    for options, expected in cases:
        result = sluice(
            state,
            "batch-processing",
            "process-videos-with-workflow",
            "--workflow-id",
            "track-shapes",
            "--batch-id",
            "clips",
            *options,
            check=False,
        )
        assert result.returncode != 0 and expected in result.stderr, (options, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_sampled_records_match_the_source(state: Path, media: Path, tmp_path: Path) -> None:
    result = _run_job(state, "sampled", "clips")
    assert "completed with errors" in result.stdout, result.stdout + result.stderr
    records = _records(_export(state, "sampled", tmp_path / "sampled"))
    by_video: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_video[record["video"]].append(record)
    assert set(by_video) == {*SOURCES, "cut.mp4"}
    for name, (_, _, _, seconds, _) in SOURCES.items():
        frames = by_video[name]
        assert all(r["status"] == "ok" for r in frames), (name, frames[:2])
        assert abs(len(frames) - seconds * FPS) <= 1, (name, len(frames))
        indices = [r["frame_index"] for r in frames]
        assert indices == sorted(set(indices)), name
        times = _source_times(media / "clips" / name)
        for record in frames:
            assert record["timestamp_s"] == pytest.approx(times[record["frame_index"]], abs=1e-4), name
        assert max(r["timestamp_s"] for r in frames) > seconds - 2.0 / FPS, name
    cut = by_video["cut.mp4"]
    errors = [r for r in cut if r["status"] == "error"]
    assert len(errors) == 1 and errors[0]["frame_index"] is None, cut[-2:]
    assert "could not be decoded" in errors[0]["error"]
    assert len(cut) > 1, "the frames before the break are kept"


def _plan(media: Path) -> list[ShapeTrack]:
    return [ShapeTrack(**fields) for fields in json.loads((media / "plan.json").read_text())]


def _ids_by_color(records: list[dict[str, Any]]) -> dict[str, list[tuple[float, int]]]:
    seen: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for record in records:
        for prediction in record["outputs"]["tracked"]["predictions"]:
            seen[prediction["class"]].append((record["timestamp_s"], prediction["tracker_id"]))
    return seen


def test_tracker_ids_hold_across_segment_seams(state: Path, media: Path, tmp_path: Path) -> None:
    _stage(state, media / "shapes", "shapes")
    result = _run_job(state, "tracked", "shapes", "--video-segment-seconds", "5", "--save-image-outputs")
    assert "completed" in result.stdout and "errors" not in result.stdout, result.stdout + result.stderr
    details = sluice(state, "batch-processing", "show-job-details", "--job-id", "tracked").stdout
    assert re.search(r"processing\s+completed\s+3/3", details), details  # three segments
    folder = _export(state, "tracked", tmp_path / "tracked")
    records = _records(folder)
    assert len(records) == 60 and [r["frame_index"] for r in records] == list(range(0, 300, 5))
    seen = _ids_by_color(records)
    ids_of_track: dict[int, set[int]] = {}
    for number, track in enumerate(_plan(media)):
        during = {tid for t, tid in seen[track.color] if track.enter_s + 0.3 < t < track.exit_s - 0.3}
        assert len(during) == 1, (track, sorted(seen[track.color]))
        ids_of_track[number] = during
    every = [next(iter(ids)) for ids in ids_of_track.values()]
    assert len(set(every)) == len(every), "different objects, different ids"
    crossing = [t for t in _plan(media) if t.enter_s < 5.0 < t.exit_s or t.enter_s < 10.0 < t.exit_s]
    assert crossing, "the clip has an object crossing a seam"
    video = folder / records[0]["image_outputs"]["annotated"]
    facts = mp4_facts(str(video))
    assert facts.codec == "h264" and (facts.width, facts.height) == (640, 360), facts
    assert facts.frames == len(records) and facts.moov_before_mdat, facts
    assert facts.fps == pytest.approx(FPS, rel=0.01), facts


def test_the_dashboard_gallery_plays_the_annotated_video(state: Path) -> None:
    """The job page's gallery lists the tracked job's annotated video and plays it when asked."""
    at = DashboardStack.of(state).app("job", job_id="tracked").run()
    assert not at.exception, at.exception
    play = [b for b in at.button if b.label.startswith("Play (")]
    assert len(play) == 1, [b.label for b in at.button]
    assert "shapes.mp4" in [t.value for t in at.text], [t.value for t in at.text]
    play[0].click().run()
    assert not at.exception, at.exception
    videos = at.get("video")
    assert len(videos) == 1 and videos[0].proto.url, videos


def _worker_pid(state: Path) -> int:
    pid = json.loads((state / "stack.json").read_text())["parts"]["worker"]["pid"]
    assert isinstance(pid, int)
    return pid


def test_worker_killed_mid_video(state: Path, media: Path, tmp_path: Path) -> None:
    _stage(state, media / "long", "long")
    options = ("--max-video-fps", "10", "--video-segment-seconds", "20", "--save-image-outputs", "--wait")
    command = [sys.executable, "-m", "sluice.cli.main", *_job_args("killed", "long", *options)]
    job = subprocess.Popen(
        [*command, "--state-dir", str(state)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    killed_at = None
    deadline = time.monotonic() + 120
    while killed_at is None and time.monotonic() < deadline:
        killed_at = _half_done_segment(state, "killed")
        if killed_at is not None:
            os.kill(_worker_pid(state), signal.SIGKILL)
        time.sleep(0.05)
    assert killed_at, "no segment was seen half done"
    out, err = job.communicate(timeout=300)
    assert "killed completed" in out, out + err
    print(f"[video worker kill] killed the worker with {killed_at}")
    logs = sluice(state, "batch-processing", "fetch-logs", "--job-id", "killed").stdout
    assert "task redelivered" in logs and "(delivery 2)" in logs, logs
    records = _records(_export(state, "killed", tmp_path / "killed"))
    indices = [r["frame_index"] for r in records]
    expected = selected_frames(np.array(_source_times(media / "long" / "long.mp4")), 10.0)
    assert len(expected) == 600
    assert indices == [int(i) for i in expected], "every sampled frame once, in order"
    assert all(r["status"] == "ok" for r in records)
    facts = mp4_facts(str(tmp_path / "killed" / records[0]["image_outputs"]["annotated"]))
    assert facts.frames == 600 and facts.moov_before_mdat, facts


def test_abort_then_restart_a_video_job(state: Path, tmp_path: Path) -> None:
    """A video job aborted mid-segment stops there; its restart finishes every frame, each once."""
    options = ("--video-segment-seconds", "20", "--max-parallel-tasks", "1")
    started = sluice(state, *_job_args("aborted", "long", *options)).stdout
    assert "job aborted" in started
    deadline = time.monotonic() + 60
    while _half_done_segment(state, "aborted") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "aborted" in sluice(state, "batch-processing", "abort-job", "--job-id", "aborted").stdout
    details = sluice(state, "batch-processing", "show-job-details", "--job-id", "aborted").stdout
    assert re.search(r"^state\s+aborted", details, re.MULTILINE), details
    assert "videos, every frame, segments of 20 s" in details
    done = re.search(r"^processing\s+aborted\s+\S+\s+(\d+)/1500", details, re.MULTILINE)
    assert done and int(done[1]) < 1500, details
    restarted = sluice(state, "batch-processing", "restart-job", "--job-id", "aborted", "--wait").stdout
    assert "job aborted completed" in restarted, restarted
    records = _records(_export(state, "aborted", tmp_path / "aborted"))
    assert [r["frame_index"] for r in records] == list(range(1500)), "every frame once, in order"
