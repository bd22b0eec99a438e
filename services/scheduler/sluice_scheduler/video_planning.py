"""Cutting a video job into tasks: one task per time segment of each video.

A video no longer than the segment length is one task. A longer one is cut at multiples of the
segment length (rounded to whole sampling intervals, so a segment processes exactly the frames
the whole video would), and each segment after the first also decodes a warm-up stretch before
its start so stateful blocks (the tracker) are warm at the seam. How many frames each segment
processes is counted from the video's frame index, which staging wrote beside the video.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from sluice import storage
from sluice.errors import FailedPrecondition, InvalidArgument
from sluice.v1 import common_pb2, staging_pb2, tasks_pb2
from sluice.video.frame_index import FrameIndex
from sluice.video.sampling import plan_segments
from sluice_scheduler.planning import PROCESSING
from sluice_scheduler.repository import NewTask

DEFAULT_SEGMENT_S = 300.0
MIN_SEGMENT_S = 5.0
WARMUP_S = 2.0
MAX_VIDEO_FPS = 1000.0


@dataclass(frozen=True)
class VideoPlan:
    tasks: list[NewTask]
    videos: int
    frames: int


def video_options(max_video_fps: float | None, segment_s: float) -> tuple[float, float]:
    """Check a job's sampling rate (None: every frame, stored as 0) and segment length."""
    fps = 0.0
    if max_video_fps is not None:
        if not (math.isfinite(max_video_fps) and 0 < max_video_fps <= MAX_VIDEO_FPS):
            raise InvalidArgument(
                f"max video fps must be greater than 0 and at most {MAX_VIDEO_FPS:g}, not {max_video_fps:g}"
            )
        fps = max_video_fps
    if segment_s == 0:
        segment_s = DEFAULT_SEGMENT_S
    if not (math.isfinite(segment_s) and segment_s >= MIN_SEGMENT_S):
        raise InvalidArgument(f"video segment seconds must be at least {MIN_SEGMENT_S:g}, not {segment_s:g}")
    return fps, segment_s


def _read_index(input_url: str, video: staging_pb2.BatchObject) -> FrameIndex:
    if not video.HasField("video") or not video.video.frame_index_name:
        raise FailedPrecondition(
            f"video {video.name!r} has no frame index: stage it again with create-batch-of-videos"
        )
    try:
        data = storage.read_bytes(input_url, video.video.frame_index_name)
    except FileNotFoundError:
        raise FailedPrecondition(
            f"the frame index of video {video.name!r} is missing: stage it again"
        ) from None
    return FrameIndex.from_json_bytes(data)


async def video_tasks(
    template: tasks_pb2.Task,
    job_uid: str,
    input_url: str,
    videos: list[staging_pb2.BatchObject],
    max_fps: float,
    segment_s: float,
) -> VideoPlan:
    """The processing tasks of a video job, numbered `<uid>-p00000` on in video, then time, order."""
    tasks: list[NewTask] = []
    frames = 0
    for video in videos:
        index = await asyncio.to_thread(_read_index, input_url, video)
        for segment in plan_segments(index.times_s, max_fps, segment_s, WARMUP_S):
            task = tasks_pb2.Task()
            task.CopyFrom(template)
            task.task_id = f"{job_uid}-p{len(tasks):05d}"
            task.stage = PROCESSING
            task.input_names[:] = [video.name]
            task.video_job = True
            task.video.CopyFrom(
                tasks_pb2.VideoSegment(
                    name=video.name,
                    index=segment.index,
                    count=segment.count,
                    start_s=segment.start_s,
                    end_s=segment.end_s if math.isfinite(segment.end_s) else 0.0,
                    warmup_start_s=segment.warmup_start_s,
                    max_fps=max_fps,
                    frames_total=segment.frames_total,
                    info=video.video,
                )
            )
            frames += segment.frames_total
            tasks.append(NewTask(task.task_id, PROCESSING, segment.frames_total, task.SerializeToString()))
    return VideoPlan(tasks, len(videos), frames)


def is_video_batch(batch: staging_pb2.Batch) -> bool:
    return batch.type == common_pb2.BATCH_TYPE_VIDEOS
