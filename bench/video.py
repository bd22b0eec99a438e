"""Video: what Sluice costs over a bare FFmpeg-pipe loop, per frame size and sampling rate.

    .venv/bin/python -m bench.video [--seconds S] [--repeats R] [--skip-job] [--job-timeout S]

For 640x480 and 1280x720 clips, at every frame and at 5 fps: frames/s of decoding alone, of
decoding + the model, and of the whole video job on a fresh local stack, each against the bare
loop of the same size and rate (one process: `ffmpeg ... -f rawvideo pipe:` read with numpy, and
the detector called per batch of 8). See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.mesh import CliError, JobWatcher, cli, cli_command, log_tails, sluice_down
from bench.report import aligned, fmt
from sluice.job_states import JOB_STATES
from sluice.models import Detector, MappingCatalog
from sluice.stack.state import load_credentials
from sluice.v1 import scheduler_pb2
from sluice.video.decode import FrameStream, read_frames
from sluice.video.probe import VideoProbe, probe_video
from sluice.video.synthetic import (
    SHAPES_INPUT_SIZE,
    SHAPES_MODEL_ID,
    shapes_model_spec,
    shapes_spec_fields,
    write_moving_shapes,
    write_shapes_detector,
)
from sluice.video.tools import ffmpeg_exe
from sluice.workflow import CompiledWorkflow, compile_workflow
from sluice_worker.options import WorkerOptions
from sluice_worker.processing import run_workflow

ROOT = Path(__file__).resolve().parent.parent
TRACK_SHAPES = ROOT / "examples" / "workflows" / "track-shapes.json"
SIZES = ((640, 480), (1280, 720))
SAMPLED_FPS = 5.0
RATES = (0.0, SAMPLED_FPS)
"""0: every frame; else at most this many frames per second of video (`--max-video-fps`)."""
SOURCE_FPS = 25.0
BATCH = WorkerOptions().batch_size
WARMUP_S = 2.0
"""The untimed warm-up runs each way over the first seconds of the clip."""
WORKFLOW_ID = "bench-shapes-detection"
PROCESSING = "processing"

BARE_DECODE = "bare decode (ffmpeg pipe)"
SLUICE_DECODE = "sluice decode (read_frames)"
BARE_MODEL = "bare decode + model"
SLUICE_MODEL = "sluice decode + workflow"
SLUICE_JOB = "sluice video job"
IN_PROCESS_WAYS = (BARE_DECODE, SLUICE_DECODE, BARE_MODEL, SLUICE_MODEL)
BASELINE = {BARE_DECODE: BARE_DECODE, SLUICE_DECODE: BARE_DECODE}
"""The bare row each way is divided by (decode + model for the rest)."""


# --- Inputs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    width: int
    height: int
    path: Path
    frames: int
    seconds: float
    probe: VideoProbe
    """The facts and frame index, as staging makes them (not timed: staging probes)."""

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


def rate_label(max_fps: float) -> str:
    return "full" if max_fps <= 0 else f"{max_fps:g} fps"


def detection_workflow() -> dict[str, Any]:
    """track-shapes.json without the tracker and the drawing: the detector step and its boxes.

    The bare loop runs the same model only, so the two do the same work per frame.
    """
    definition = json.loads(TRACK_SHAPES.read_text())
    step = next(s for s in definition["steps"] if s["type"].startswith("sluice/object_detection_model"))
    used = {str(v).split(".")[1] for v in step.values() if str(v).startswith("$inputs.")}
    return {
        "version": definition["version"],
        "inputs": [i for i in definition["inputs"] if i["type"] == "WorkflowImage" or i["name"] in used],
        "steps": [step],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": f"$steps.{step['name']}.predictions"}
        ],
    }


def default_confidence(definition: dict[str, Any]) -> float:
    step = definition["steps"][0]
    name = str(step["confidence"]).removeprefix("$inputs.")
    return float(next(i["default_value"] for i in definition["inputs"] if i["name"] == name))


def write_clips(folder: Path, seconds: float) -> list[Clip]:
    clips = []
    for width, height in SIZES:
        path = folder / f"{width}x{height}" / f"shapes-{width}x{height}.mp4"
        path.parent.mkdir(parents=True)
        write_moving_shapes(path, width=width, height=height, fps=SOURCE_FPS, duration_s=seconds)
        probe = probe_video(path)
        frames = int(probe.info.frame_count)
        clips.append(Clip(width, height, path, frames, seconds, probe))
    return clips


# --- The in-process ways ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    frames: int
    seconds: float
    boxes: tuple[int, ...] = ()
    """Detections per frame (the model ways)."""


def bare_frames(clip: Clip, max_fps: float, limit_s: float | None = None) -> Iterator[np.ndarray]:
    """What a user would write: FFmpeg decodes to raw BGR on a pipe, numpy reads frame by frame.

    At a sampled rate FFmpeg's `fps` filter drops the other frames before the pipe.
    """
    command = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(clip.path)]
    if max_fps > 0:
        command += ["-vf", f"fps={max_fps:g}"]
    if limit_s is not None:
        command += ["-t", f"{limit_s:g}"]
    command += ["-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:"]
    frame_bytes = clip.width * clip.height * 3
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    finished = False
    try:
        while True:
            data = process.stdout.read(frame_bytes)
            if len(data) < frame_bytes:
                break
            yield np.frombuffer(data, np.uint8).reshape(clip.height, clip.width, 3)
        finished = True
    finally:
        if not finished:
            process.kill()  # the consumer stopped early
        process.stdout.close()
        errors = process.stderr.read().decode(errors="replace").strip()
        process.stderr.close()
        code = process.wait()
    if code != 0:
        raise RuntimeError(f"ffmpeg failed ({code}): {errors}")


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def bare_decode(clip: Clip, max_fps: float, limit_s: float | None = None) -> Timed:
    start = time.perf_counter()
    frames = sum(1 for _ in bare_frames(clip, max_fps, limit_s))
    return Timed(frames, time.perf_counter() - start)


def bare_model(
    clip: Clip, max_fps: float, detector: Detector, confidence: float, limit_s: float | None = None
) -> Timed:
    start = time.perf_counter()
    boxes: list[int] = []
    for batch in _chunks(bare_frames(clip, max_fps, limit_s), BATCH):
        boxes.extend(len(d) for d in detector.detect(batch, confidence=confidence))
    return Timed(len(boxes), time.perf_counter() - start, tuple(boxes))


def _sluice_stream(clip: Clip, max_fps: float, limit_s: float | None) -> FrameStream:
    end_s = limit_s if limit_s is not None else float("inf")
    return read_frames(str(clip.path), clip.probe.info, clip.probe.index, end_s=end_s, max_fps=max_fps)


def sluice_decode(clip: Clip, max_fps: float, limit_s: float | None = None) -> Timed:
    start = time.perf_counter()
    with _sluice_stream(clip, max_fps, limit_s) as stream:
        frames = sum(1 for _ in stream)
    seconds = time.perf_counter() - start
    if stream.error:
        raise RuntimeError(f"read_frames: {stream.error}")
    return Timed(frames, seconds)


def sluice_model(
    clip: Clip, max_fps: float, workflow: CompiledWorkflow, limit_s: float | None = None
) -> Timed:
    """What a worker's task slot does per segment: read_frames, then the workflow per batch of 8
    with the frame's metadata (through the worker's own `run_workflow`)."""
    name = clip.path.name
    fps = float(clip.probe.info.fps)
    start = time.perf_counter()
    boxes: list[int] = []
    failed = 0
    with _sluice_stream(clip, max_fps, limit_s) as stream:
        for batch in _chunks(iter(stream), BATCH):
            metadata = [
                {
                    "video_id": "bench",
                    "video_name": name,
                    "frame_number": f.index,
                    "frame_timestamp": f.time_s,
                    "fps": fps,
                }
                for f in batch
            ]
            for result in run_workflow(workflow, [f.image for f in batch], {}, metadata):
                if isinstance(result, str):
                    failed += 1
                    boxes.append(-1)
                else:
                    predictions: Any = result["predictions"]  # sv.Detections
                    boxes.append(len(predictions))
    seconds = time.perf_counter() - start
    if stream.error:
        raise RuntimeError(f"read_frames: {stream.error}")
    if failed:
        raise RuntimeError(f"the workflow failed on {failed} frames")
    return Timed(len(boxes), seconds, tuple(boxes))


@dataclass
class Runs:
    """The timed passes of one way at one size and rate."""

    passes: list[Timed] = field(default_factory=list)

    @property
    def median(self) -> Timed:
        ordered = sorted(self.passes, key=lambda t: t.seconds)
        return ordered[(len(ordered) - 1) // 2]

    def spread(self) -> str:
        seconds = [t.seconds for t in self.passes]
        if len(seconds) == 1:
            return "1 pass"
        return f"median of {len(seconds)} ({min(seconds):.2f}-{max(seconds):.2f} s)"


Key = tuple[str, str, float]
"""(way, size, max_fps)."""


def run_in_process(
    clips: Sequence[Clip], repeats: int, detector: Detector, workflow: CompiledWorkflow, confidence: float
) -> dict[Key, Runs]:
    ways: dict[str, Callable[[Clip, float, float | None], Timed]] = {
        BARE_DECODE: lambda c, r, limit: bare_decode(c, r, limit),
        SLUICE_DECODE: lambda c, r, limit: sluice_decode(c, r, limit),
        BARE_MODEL: lambda c, r, limit: bare_model(c, r, detector, confidence, limit),
        SLUICE_MODEL: lambda c, r, limit: sluice_model(c, r, workflow, limit),
    }
    started = time.perf_counter()
    for clip in clips:
        clip.path.read_bytes()  # into the page cache, for whichever way comes first
        for rate in RATES:
            for way in ways.values():
                way(clip, rate, WARMUP_S)
    print(
        f"warm-up (untimed, the first {WARMUP_S:g} s of each clip, every way): "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    runs: dict[Key, Runs] = {}
    for number in range(repeats):
        print(f"pass {number + 1}/{repeats} ...", flush=True)
        for clip in clips:
            for rate in RATES:
                # Bare and Sluice take turns going first, so a busy moment hits both alike.
                for pair in ((BARE_DECODE, SLUICE_DECODE), (BARE_MODEL, SLUICE_MODEL)):
                    order = pair if number % 2 == 0 else pair[::-1]
                    for name in order:
                        result = ways[name](clip, rate, None)
                        runs.setdefault((name, clip.size, rate), Runs()).passes.append(result)
    return runs


def check_in_process(clips: Sequence[Clip], runs: dict[Key, Runs]) -> list[str]:
    """What looks wrong: frame counts that differ between passes, ways or the frame index, and
    detections that differ between the bare loop and the workflow on the same frames."""
    problems = []
    for clip in clips:
        for rate in RATES:
            counts = {way: {t.frames for t in runs[(way, clip.size, rate)].passes} for way in IN_PROCESS_WAYS}
            for way, seen in counts.items():
                if len(seen) != 1:
                    problems.append(f"{clip.size} {rate_label(rate)}: {way} gave {sorted(seen)} frames")
            if rate <= 0:
                for way in IN_PROCESS_WAYS:
                    if counts[way] != {clip.frames}:
                        problems.append(
                            f"{clip.size} full: {way} gave {sorted(counts[way])} frames; "
                            f"the frame index has {clip.frames}"
                        )
                bare = runs[(BARE_MODEL, clip.size, rate)].passes[0].boxes
                ours = runs[(SLUICE_MODEL, clip.size, rate)].passes[0].boxes
                if bare != ours:
                    differ = sum(a != b for a, b in zip(bare, ours, strict=False))
                    problems.append(
                        f"{clip.size} full: the workflow's box counts differ from the bare loop's "
                        f"on {differ} frames ({sum(bare)} vs {sum(ours)} boxes)"
                    )
            else:
                sampled = {next(iter(counts[w])) for w in IN_PROCESS_WAYS if len(counts[w]) == 1}
                if sampled and max(sampled) - min(sampled) > 1:
                    problems.append(
                        f"{clip.size} {rate_label(rate)}: FFmpeg's fps filter and Sluice's sampling "
                        f"chose {sorted(sampled)} frames"
                    )
    return problems


# --- The full video job ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRun:
    frames: int
    seconds: float
    """The job's created_at to its ended_at, as the scheduler recorded them."""
    processing_s: float | None
    """created_at to the first GetJob showing every frame of the processing stage done."""
    tasks: int
    records: int
    bare: Timed | None = None
    """The bare loop (decode + model), run on the same clip and rate just before this job."""

    @property
    def paired_ratio(self) -> float | None:
        if self.bare is None:
            return None
        return (self.frames / self.seconds) / (self.bare.frames / self.bare.seconds)


def _seconds_between(start: Any, end: Any) -> float:
    return float(end.ToMicroseconds() - start.ToMicroseconds()) / 1e6


def job_id(clip: Clip, rate: float, number: int) -> str:
    return f"bench-{clip.size}-{'full' if rate <= 0 else f'{rate:g}fps'}-{number + 1}"


def _count_frame_records(export_dir: Path) -> tuple[int, int]:
    """(frame records, failed records) in an unpacked video job export."""
    results = export_dir / "results.jsonl"
    if not results.is_file():
        raise RuntimeError(f"the export has no results.jsonl: {sorted(p.name for p in export_dir.iterdir())}")
    records = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    frames = [r for r in records if r.get("frame_index") is not None]
    return len(frames), sum(r.get("status") != "ok" for r in records)


async def _one_job(
    state: Path,
    credentials: dict[str, str],
    job: str,
    rate: float,
    batch: str,
    timeout_s: float,
    check_export: bool,
) -> JobRun:
    """Run one video job with `--wait`; when `check_export`, download its export and count it."""
    watcher = JobWatcher(credentials["scheduler_address"], credentials["api_key"], job)
    watching = asyncio.create_task(watcher.run())
    options = ["--max-video-fps", f"{rate:g}"] if rate > 0 else []
    try:
        try:
            await cli(
                state,
                *("batch-processing", "process-videos-with-workflow", "--workflow-id", WORKFLOW_ID),
                *("--batch-id", batch, "--job-id", job, *options, "--wait"),
                timeout_s=timeout_s,
            )
        except CliError as error:
            raise CliError(f"{error}; the job was last seen as {watcher.last_seen}") from None
        await asyncio.wait_for(watching, timeout=10)
    finally:
        if not watching.done():
            watching.cancel()
    seen = watcher.job
    if seen is None or seen.state != scheduler_pb2.JOB_STATE_COMPLETED:
        state_name = "not seen" if seen is None else JOB_STATES.get(seen.state, str(seen.state))
        detail = "" if seen is None else f" ({seen.error or seen.notice})"
        raise RuntimeError(f"the job ended {state_name}{detail}; last seen as {watcher.last_seen}")
    stage = next(s for s in seen.stages if s.name == PROCESSING)
    records, failed = int(stage.items_done), int(stage.items_failed)
    if check_export:
        export_dir = state.parent / "export" / job
        await cli(
            state,
            *("data-staging", "export-batch", "--batch-id", f"{job}-export", "--target-dir", str(export_dir)),
            timeout_s=timeout_s,
        )
        records, failed = _count_frame_records(export_dir)
        shutil.rmtree(export_dir, ignore_errors=True)
    if records != stage.items_total or failed or stage.items_done != stage.items_total:
        raise RuntimeError(
            f"{'the export holds' if check_export else 'the stage counts'} {records} frame records "
            f"({failed} failed) for "
            f"{stage.items_done}/{stage.items_total} frames done"
        )
    return JobRun(
        frames=int(stage.items_total),
        seconds=_seconds_between(seen.created_at, seen.ended_at),
        processing_s=None
        if watcher.created_at is None or watcher.processing_done_at is None
        else watcher.processing_done_at - watcher.created_at,
        tasks=int(stage.tasks_total),
        records=records,
    )


@dataclass
class JobsReport:
    runs: dict[tuple[str, float], list[JobRun]] = field(default_factory=dict)
    """(size, max_fps) -> the jobs that succeeded, in order."""
    errors: dict[tuple[str, float], str] = field(default_factory=dict)
    """(size, max_fps) -> why its first failed job failed."""
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def fail(self, key: tuple[str, float], error: BaseException) -> None:
        self.errors.setdefault(key, f"{type(error).__name__}: {str(error).splitlines()[0]}")


def _stage(folder: Path, name: str) -> tuple[str, ...]:
    return ("data-staging", "create-batch-of-videos", "--videos-dir", str(folder), "--batch-id", name)


async def _all_jobs(
    state: Path,
    work_dir: Path,
    clips: Sequence[Clip],
    warm: Path,
    bare: Callable[[Clip, float], Timed],
    repeats: int,
    timeout_s: float,
    report: JobsReport,
) -> None:
    credentials = load_credentials(state)
    model = work_dir / "shapes.onnx"
    spec = work_dir / "shapes-spec.json"
    spec.write_text(json.dumps(shapes_spec_fields()))
    definition = work_dir / "detect-shapes.json"
    definition.write_text(json.dumps(detection_workflow(), indent=2))
    await cli(
        state,
        *(
            "models",
            "register",
            "--model-id",
            SHAPES_MODEL_ID,
            "--file",
            str(model),
            "--spec-file",
            str(spec),
        ),
    )
    await cli(state, "workflows", "create", "--workflow-id", WORKFLOW_ID, "--file", str(definition))
    staged: list[str] = []
    for clip in clips:
        start = time.perf_counter()
        await cli(state, *_stage(clip.path.parent, f"bench-{clip.size}"), timeout_s=timeout_s)
        staged.append(f"{clip.size} {time.perf_counter() - start:.1f} s")
    await cli(state, *_stage(warm.parent, "bench-warm"), timeout_s=timeout_s)
    start = time.perf_counter()
    await cli(
        state,
        *("batch-processing", "process-videos-with-workflow", "--workflow-id", WORKFLOW_ID),
        *("--batch-id", "bench-warm", "--job-id", "bench-warm", "--wait"),
        timeout_s=timeout_s,
    )
    report.notes.append(
        f"video job setup (not timed): staging {', '.join(staged)} (CLI, upload + probe); "
        f"warm-up job on a {WARMUP_S:g} s clip {time.perf_counter() - start:.1f} s"
    )
    for number in range(repeats):
        for clip in clips:
            for rate in RATES:
                key = (clip.size, rate)
                if key in report.errors:
                    continue  # failed once: its row says why
                job = job_id(clip, rate, number)
                print(f"video job {job} ...", flush=True)
                paired = bare(clip, rate)  # the stack idles meanwhile: nothing is running
                try:
                    run = await _one_job(
                        state, credentials, job, rate, f"bench-{clip.size}", timeout_s, number == 0
                    )
                except Exception as error:
                    traceback.print_exc()
                    report.fail(key, error)
                else:
                    report.runs.setdefault(key, []).append(replace(run, bare=paired))


def run_jobs(
    work_dir: Path,
    clips: Sequence[Clip],
    bare: Callable[[Clip, float], Timed],
    workers: int,
    repeats: int,
    timeout_s: float,
) -> JobsReport:
    """Up a fresh stack, time `repeats` jobs per size and rate on it (each after a run of `bare`
    on the same clip and rate), and always take the stack down again."""
    report = JobsReport()
    state = work_dir / "state"
    warm = work_dir / "warm" / "warm.mp4"
    warm.parent.mkdir()
    write_moving_shapes(warm, width=320, height=240, fps=SOURCE_FPS, duration_s=WARMUP_S)
    try:
        started = time.perf_counter()
        up = subprocess.run(
            cli_command(state, "up", "--workers-per-machine", str(workers)),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if up.returncode != 0:
            raise CliError(f"sluice up failed ({up.returncode}):\n{up.stdout}\n{up.stderr}")
        report.notes.append(f"sluice up (not timed): {time.perf_counter() - started:.1f} s, {workers} slots")
        asyncio.run(_all_jobs(state, work_dir, clips, warm, bare, repeats, timeout_s, report))
    except Exception as error:
        traceback.print_exc()
        for clip in clips:
            for rate in RATES:
                if (clip.size, rate) not in report.runs:
                    report.fail((clip.size, rate), error)
    finally:
        if report.failed and state.exists():
            print(log_tails(state, 4000), file=sys.stderr)
        if state.exists():
            sluice_down(state)
    return report


# --- The table ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    way: str
    size: str
    rate: str
    frames: int | None
    seconds: float | None
    baseline: float | None
    """frames/s of the bare row this one is divided by."""
    note: str

    @property
    def fps(self) -> float | None:
        return self.frames / self.seconds if self.frames and self.seconds else None


def table(groups: Sequence[Sequence[Row]]) -> str:
    header = ("way", "size", "rate", "frames", "seconds", "frames/s", "vs bare", "note")
    cells: list[tuple[str, ...] | None] = [header]
    for index, group in enumerate(groups):
        if index:
            cells.append(None)  # a blank line between groups
        for row in group:
            ratio = row.fps / row.baseline if row.fps is not None and row.baseline else None
            cells.append(
                (
                    row.way,
                    row.size,
                    row.rate,
                    "-" if row.frames is None else str(row.frames),
                    fmt(row.seconds, ".2f"),
                    fmt(row.fps, ".1f"),
                    "-" if ratio is None else f"{ratio:.2f}x",
                    row.note,
                )
            )
    return aligned(cells, {3, 4, 5, 6})


def _job_row(clip: Clip, rate: float, jobs: JobsReport, baseline: float) -> Row:
    key = (clip.size, rate)
    error = jobs.errors.get(key)
    done = jobs.runs.get(key, [])
    if error is not None or not done:
        return Row(SLUICE_JOB, clip.size, rate_label(rate), None, None, None, f"FAILED: {error or 'no run'}")
    ordered = sorted(done, key=lambda r: r.seconds)
    run = ordered[(len(ordered) - 1) // 2]
    spread = f"median of {len(done)} ({ordered[0].seconds:.2f}-{ordered[-1].seconds:.2f} s)"
    if len(done) == 1:
        spread = "1 job"
    tasks = {r.tasks for r in done}
    note = (
        f"{spread}; created -> ended; {'/'.join(map(str, sorted(tasks)))} segment task(s); "
        f"processing stage {fmt(run.processing_s, '.2f')} s"
    )
    return Row(SLUICE_JOB, clip.size, rate_label(rate), run.frames, run.seconds, baseline, note)


def check_jobs(clips: Sequence[Clip], runs: dict[Key, Runs], jobs: JobsReport) -> list[str]:
    """Jobs must process exactly the frames read_frames gives in-process at the same rate."""
    problems = []
    for clip in clips:
        for rate in RATES:
            expected = runs[(SLUICE_DECODE, clip.size, rate)].median.frames
            seen = sorted({r.frames for r in jobs.runs.get((clip.size, rate), [])})
            if seen and seen != [expected]:
                problems.append(
                    f"{clip.size} {rate_label(rate)}: the job processed {seen} frames, "
                    f"read_frames gives {expected}"
                )
    return problems


def build_rows(clips: Sequence[Clip], runs: dict[Key, Runs], jobs: JobsReport | None) -> list[list[Row]]:
    groups = []
    for clip in clips:
        for rate in RATES:
            medians = {way: runs[(way, clip.size, rate)].median for way in IN_PROCESS_WAYS}
            rates = {way: t.frames / t.seconds for way, t in medians.items()}
            group = []
            for way in IN_PROCESS_WAYS:
                timed = medians[way]
                baseline = rates[BASELINE.get(way, BARE_MODEL)]
                note = runs[(way, clip.size, rate)].spread()
                if way in (BARE_DECODE, BARE_MODEL) and rate > 0:
                    note += f"; -vf fps={rate:g}"
                if way in (BARE_MODEL, SLUICE_MODEL):
                    note += f"; batch {BATCH}"
                group.append(
                    Row(way, clip.size, rate_label(rate), timed.frames, timed.seconds, baseline, note)
                )
            if jobs is not None:
                group.append(_job_row(clip, rate, jobs, rates[BARE_MODEL]))
            groups.append(group)
    return groups


def _rate(timed: Timed) -> float:
    return timed.frames / timed.seconds


def paired_lines(clips: Sequence[Clip], runs: dict[Key, Runs], jobs: JobsReport | None) -> list[str]:
    """Per size and rate: the median over passes of Sluice's frames/s / the bare run's beside it."""
    lines = []
    for clip in clips:
        for rate in RATES:
            parts = []
            for label, bare_way, way in (
                ("decode", BARE_DECODE, SLUICE_DECODE),
                ("decode + workflow", BARE_MODEL, SLUICE_MODEL),
            ):
                pairs = zip(
                    runs[(bare_way, clip.size, rate)].passes, runs[(way, clip.size, rate)].passes, strict=True
                )
                ratio = statistics.median(_rate(ours) / _rate(bare) for bare, ours in pairs)
                parts.append(f"{label} {ratio:.2f}x")
            done = [] if jobs is None else jobs.runs.get((clip.size, rate), [])
            ratios = [r.paired_ratio for r in done if r.paired_ratio is not None]
            if ratios:
                parts.append(f"job {statistics.median(ratios):.2f}x")
            lines.append(f"  {clip.size} {rate_label(rate)}: {', '.join(parts)}")
    return lines


def subsampling_line(clips: Sequence[Clip], runs: dict[Key, Runs], way: str) -> str:
    """Source frames covered per second of wall time, full rate vs 5 fps, for one way."""
    parts = []
    for clip in clips:
        full = clip.frames / runs[(way, clip.size, 0.0)].median.seconds
        sampled = clip.frames / runs[(way, clip.size, SAMPLED_FPS)].median.seconds
        parts.append(
            f"{clip.size} {full:.0f} -> {sampled:.0f} source frames/s ({sampled / full:.2f}x; "
            f"{full / SOURCE_FPS:.0f} -> {sampled / SOURCE_FPS:.0f} s of video per s)"
        )
    return "; ".join(parts)


# --- Main --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.video", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each clip (default 30)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed passes of the in-process ways (default 3)"
    )
    parser.add_argument("--skip-job", action="store_true", help="do not start a stack (no job rows)")
    parser.add_argument(
        "--job-repeats", type=int, default=3, help="jobs per size and rate on the stack (default 3)"
    )
    parser.add_argument(
        "--workers-per-machine", type=int, default=2, help="the stack's worker slots (default 2)"
    )
    parser.add_argument(
        "--job-timeout",
        type=float,
        default=180.0,
        help="seconds each CLI step of the job rows may take before it counts as failed (default 180)",
    )
    return parser


def _ffmpeg_version() -> str:
    try:
        out = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "?"
    words = out.split()
    return words[2] if len(words) > 2 else "?"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.seconds < WARMUP_S or min(args.repeats, args.job_repeats, args.workers_per_machine) < 1:
        print(
            f"--seconds must be at least {WARMUP_S:g}; --repeats, --job-repeats and "
            "--workers-per-machine at least 1",
            file=sys.stderr,
        )
        return 2
    work_dir = Path(tempfile.mkdtemp(prefix="sluice-bench-video-", dir="/tmp"))
    work_dir.chmod(0o755)  # Postgres runs unprivileged
    try:
        clips = write_clips(work_dir / "clips", args.seconds)
        for clip in clips:
            print(
                f"{clip.path.name}: {clip.size}, {clip.seconds:g} s at {SOURCE_FPS:g} fps, "
                f"{clip.frames} frames, {clip.path.stat().st_size / 1e6:.2f} MB H.264 (moving squares)"
            )
        model = work_dir / "shapes.onnx"
        write_shapes_detector(model)
        spec = shapes_model_spec(model)
        definition = detection_workflow()
        confidence = default_confidence(definition)
        detector = Detector(spec)
        workflow = compile_workflow(definition, models=MappingCatalog({SHAPES_MODEL_ID: spec}))
        print(
            f"model {SHAPES_MODEL_ID} (shapes detector, {SHAPES_INPUT_SIZE}x{SHAPES_INPUT_SIZE} input), "
            f"workflow {TRACK_SHAPES.name} without tracker and drawing; {os.cpu_count()} CPUs; "
            f"onnxruntime {ort.__version__}, ORT default threads; ffmpeg {_ffmpeg_version()}",
            flush=True,
        )
        runs = run_in_process(clips, args.repeats, detector, workflow, confidence)
        problems = check_in_process(clips, runs)
        jobs = None
        if not args.skip_job:
            print("video jobs on a fresh local stack ...", flush=True)
            jobs = run_jobs(
                work_dir,
                clips,
                lambda clip, rate: bare_model(clip, rate, detector, confidence),
                args.workers_per_machine,
                args.job_repeats,
                args.job_timeout,
            )
            problems += check_jobs(clips, runs, jobs)
        print()
        print(table(build_rows(clips, runs, jobs)))
        print()
        print("paired ratios (median over passes of Sluice's frames/s / the bare loop's run beside it):")
        for line in paired_lines(clips, runs, jobs):
            print(line)
        saving = subsampling_line(clips, runs, SLUICE_DECODE)
        print(f"sub-sampling to {SAMPLED_FPS:g} fps, Sluice decode alone: {saving}")
        print(f"  and decode + workflow: {subsampling_line(clips, runs, SLUICE_MODEL)}")
        if jobs is not None:
            for note in jobs.notes:
                print(note)
        for problem in problems:
            print(f"looks wrong: {problem}")
        return 1 if (jobs is not None and jobs.failed) or problems else 0
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so that `finally` takes the stack down and cleans up


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.perf_counter()
    code = main()
    print(f"bench took {time.perf_counter() - started:.0f} s")
    sys.exit(code)
