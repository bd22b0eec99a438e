"""Running one segment of a video: decode with FFmpeg, run the workflow frame batch by batch.

FFmpeg picks the frames (at most `max_fps` a second of source time) and pipes only those, so
memory holds one batch of frames whatever the video's length. Frames before the segment's start
(its warm-up) run through the workflow only to warm the tracker; their records go to the seam
object. The frames the segment owns become records in frame order and, when asked, one H.264
part per image output. A video that breaks while decoding keeps the frames that decoded and gets
one error record saying where and why it stopped; the task still succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sluice import storage
from sluice.errors import InvalidArgument
from sluice.v1 import tasks_pb2
from sluice.video import outputs
from sluice.video.decode import Frame, FrameStream, read_frames
from sluice.video.encode import Mp4Writer
from sluice.video.frame_index import FrameIndex
from sluice.video.sampling import Segment, owned_and_warmup
from sluice.workflow import CompiledWorkflow, to_json_value
from sluice_worker.processing import (
    WORKFLOW_FAILED,
    AttemptFailed,
    TaskControl,
    TaskOutcome,
    TaskRejected,
    run_workflow,
    task_parameters,
)
from sluice_worker.records import result_object_name
from sluice_worker.video_input import local_video

log = logging.getLogger(__name__)

Record = dict[str, Any]


def _segment(video: tasks_pb2.VideoSegment) -> Segment:
    return Segment(
        index=video.index,
        count=video.count,
        start_s=video.start_s,
        end_s=video.end_s if video.end_s > 0 else math.inf,
        warmup_start_s=video.warmup_start_s,
        frames_total=int(video.frames_total),
    )


def output_fps(video: tasks_pb2.VideoSegment) -> float:
    """The annotated video's frame rate: the sampling rate, or the source's when every frame runs."""
    source = video.info.fps or 25.0
    return video.max_fps if 0 < video.max_fps < source else source


@dataclass
class _Run:
    """What one segment has produced so far."""

    task: tasks_pb2.Task
    workflow: CompiledWorkflow
    params: dict[str, Any]
    owned: set[int]
    warmup: set[int]
    stream_id: str
    writers: dict[str, Mp4Writer] = field(default_factory=dict)
    parts: dict[str, Path] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    seam_records: list[Record] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    failed: int = 0
    """Owned frames the workflow failed on."""
    raised: int = 0

    def abort_writers(self) -> None:
        """Drop the parts of a run that did not finish."""
        for writer in self.writers.values():
            writer.abort()
        self.writers.clear()

    def close_writers(self) -> dict[str, int]:
        """Finish every annotated part; how many frames each holds."""
        written: dict[str, int] = {}
        for name, writer in self.writers.items():
            written[name] = writer.close()
        self.writers.clear()
        return written

    def metadata(self, frame: Frame) -> dict[str, Any]:
        video = self.task.video
        return {
            "video_id": self.stream_id,
            "video_name": video.name,
            "frame_number": frame.index,
            "frame_timestamp": frame.time_s,
            "fps": video.info.fps,
        }

    def record(self, frame: Frame, result: dict[str, object] | str) -> Record:
        video = self.task.video
        record: Record = {
            outputs.VIDEO: video.name,
            outputs.FRAME_INDEX: frame.index,
            outputs.TIMESTAMP: round(frame.time_s, 6),
            outputs.SEGMENT: video.index,
            "task_id": self.task.task_id,
            "status": "ok",
            "error": None,
            "outputs": {},
            "image_outputs": {},
        }
        if isinstance(result, str):
            record["status"], record["error"] = "error", result
            return record
        image_outputs = set(self.workflow.image_outputs)
        record["outputs"] = {
            name: to_json_value(value, frame.image.shape)
            for name, value in result.items()
            if name not in image_outputs
        }
        record["image_outputs"] = {name: outputs.video_output_name(video.name, name) for name in self.writers}
        return record

    def run_batch(self, frames: list[Frame]) -> None:
        """Run the workflow on a batch of frames and keep their records (blocking)."""
        frames = [
            f
            for f in frames
            if f.index not in self.seen and (f.index in self.owned or f.index in self.warmup)
        ]
        if not frames:
            return
        try:
            results = run_workflow(
                self.workflow, [f.image for f in frames], self.params, [self.metadata(f) for f in frames]
            )
        except InvalidArgument as error:
            raise TaskRejected(f"workflow cannot run: {error.message}") from None
        for frame, result in zip(frames, results, strict=True):
            self.seen.add(frame.index)
            record = self.record(frame, result)
            if frame.index not in self.owned:
                self.seam_records.append(record)
                continue
            self.records.append(record)
            if isinstance(result, str):
                self.failed += 1
                self.raised += result.startswith(WORKFLOW_FAILED)
            for name, writer in self.writers.items():
                value = None if isinstance(result, str) else result.get(name)
                # A frame the workflow failed on keeps its place in the video, unannotated.
                writer.write(value if isinstance(value, np.ndarray) else frame.image)


def _batches(stream: FrameStream, size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in stream:
        batch.append(frame)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _next(batches: Iterator[list[Frame]]) -> list[Frame] | None:
    return next(batches, None)


def _read_index(task: tasks_pb2.Task) -> FrameIndex:
    name = task.video.info.frame_index_name
    if not name:
        raise TaskRejected(f"video {task.video.name!r} has no frame index: stage it again")
    return FrameIndex.from_json_bytes(storage.read_bytes(task.input_url, name))


def _broken_record(run: _Run, missing: int, error: str | None) -> Record:
    video = run.task.video
    total = len(run.owned)
    last = max((r[outputs.FRAME_INDEX] for r in run.records), default=None)
    where = f"after frame {last}" if last is not None else "before its first frame"
    reason = error or "the video stream ended early"
    return {
        outputs.VIDEO: video.name,
        outputs.FRAME_INDEX: None,
        outputs.TIMESTAMP: None,
        outputs.SEGMENT: video.index,
        "task_id": run.task.task_id,
        "status": "error",
        "error": f"decoding stopped {where}: {missing} of {total} frames could not be decoded ({reason})",
        "outputs": {},
        "image_outputs": {},
    }


def _jsonl(records: list[Record]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records).encode()


async def run_video_task(
    task: tasks_pb2.Task,
    workflow: CompiledWorkflow,
    batch_size: int,
    control: TaskControl | None = None,
    *,
    hwaccel: bool = False,
    stream_id: str = "",
) -> TaskOutcome:
    """Process one segment of a video and write its records, seam records and video parts.

    Raises TaskRejected when the task can never succeed, AttemptFailed when the workflow raised on
    every frame, OSError when the store fails (both worth a retry).
    """
    control = control or TaskControl()
    video = task.video
    index = await asyncio.to_thread(_read_index, task)
    owned, warmup = owned_and_warmup(index.times_s, video.max_fps, _segment(video))
    run = _Run(
        task,
        workflow,
        task_parameters(task),
        {int(i) for i in owned},
        {int(i) for i in warmup},
        stream_id or task.task_id,
    )
    stopped = False
    error: str | None = None
    missing = 0
    with tempfile.TemporaryDirectory(prefix="sluice-video-") as scratch, contextlib.ExitStack() as stack:
        path = await asyncio.to_thread(local_video, task.input_url, video.name, Path(scratch))
        stack.callback(run.abort_writers)
        if task.save_image_outputs:
            for name in task.image_outputs_to_save or workflow.image_outputs:
                part = Path(scratch) / f"out-{len(run.writers)}.mp4"
                run.parts[name] = part
                run.writers[name] = Mp4Writer(
                    str(part), video.info.width, video.info.height, output_fps(video)
                )
        stream = stack.enter_context(
            read_frames(
                str(path),
                video.info,
                index,
                start_s=video.warmup_start_s,
                end_s=video.end_s if video.end_s > 0 else math.inf,
                max_fps=video.max_fps,
                hwaccel=hwaccel,
            )
        )
        batches = _batches(stream, batch_size)
        # FFmpeg decodes the next batch while the workflow runs on this one.
        reading: asyncio.Future[list[Frame] | None] = asyncio.ensure_future(asyncio.to_thread(_next, batches))
        try:
            while True:
                if control.should_stop():
                    stopped = True
                    break
                frames = await reading
                if frames is None:
                    break
                reading = asyncio.ensure_future(asyncio.to_thread(_next, batches))
                await asyncio.to_thread(run.run_batch, frames)
                control.report(len(run.records), run.failed)
        finally:
            stream.close()  # ends a read still waiting on FFmpeg
            with contextlib.suppress(BaseException):
                await reading
            workflow.end_stream(run.stream_id)
        error = stream.error
        decoded = len(run.records)
        if not stopped and decoded and run.raised == decoded:
            first = next(r["error"] for r in run.records if r["error"])
            raise AttemptFailed(f"the workflow raised on every frame of the segment ({first})")
        missing = 0 if stopped else len(run.owned) - decoded
        if missing > 0 or (not stopped and error and not run.owned):
            run.records.append(_broken_record(run, missing, error))
        written = await asyncio.to_thread(run.close_writers)
        if not stopped:
            for name, count in written.items():
                if count:
                    part_name = outputs.segment_part_name(video.name, name, video.index)
                    await asyncio.to_thread(storage.write_file, task.output_url, part_name, run.parts[name])
        if run.seam_records:
            await asyncio.to_thread(
                storage.write_bytes,
                task.output_url,
                outputs.seam_object_name(task.task_id),
                _jsonl(run.seam_records),
            )
        await asyncio.to_thread(
            storage.write_bytes, task.output_url, result_object_name(task.task_id), _jsonl(run.records)
        )
    return TaskOutcome(
        items_done=decoded + max(missing, 0),
        items_failed=run.failed + max(missing, 0),
        stopped=stopped,
        errors=tuple(r["error"] for r in run.records if r["error"]),
    )
