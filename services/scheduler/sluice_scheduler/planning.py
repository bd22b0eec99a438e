"""Cutting a job's input into tasks: the messages workers receive."""

from __future__ import annotations

from sluice.v1 import common_pb2, tasks_pb2
from sluice_scheduler.repository import NewTask

PROCESSING = "processing"
EXPORT = "export"
DEFAULT_MAX_ARCHIVE_BYTES = 512 * 1024 * 1024
MACHINE_ENUMS = {"cpu": common_pb2.MACHINE_TYPE_CPU, "gpu": common_pb2.MACHINE_TYPE_GPU}


TAIL_FROM_TASKS = 4
"""A job of at least this many full tasks ends on a shrinking tail (see `task_sizes`)."""
SMALLEST_TAIL_PART = 16
"""The tail's tasks shrink to no less than task_size // this (a task has a fixed cost too)."""


def task_sizes(total: int, task_size: int) -> list[int]:
    """How many of a job's `total` inputs each task holds, in order: 1, 2, 4, ... doubling up to
    `task_size`, then `task_size` each; a job of at least TAIL_FROM_TASKS full tasks spends its
    last `task_size` inputs on halving tasks (task_size / 2, / 4, ... down to task_size / 16).

    Small first tasks make a job's first records visible within about a second of its first
    image (a task writes its records when it ends), at the cost of a few more tasks: about
    log2(task_size) of them, less than one task size of images in all. Small last tasks let the
    slots end together: with full tasks to the end, one slot often ran the last task alone
    while the others waited (half a task's time on average, 4 % of a light detector's job).
    """
    tail = task_size if task_size > 1 and total >= TAIL_FROM_TASKS * task_size else 0
    sizes: list[int] = []
    size, left = 1, total - tail
    while left > 0:
        take = min(size, task_size, left)
        sizes.append(take)
        left -= take
        size *= 2
    smallest = max(1, task_size // SMALLEST_TAIL_PART)
    size = task_size // 2
    while tail > 0:
        take = min(max(size, smallest), tail)
        sizes.append(take)
        tail -= take
        size //= 2
    return sizes


def processing_tasks(
    template: tasks_pb2.Task, job_uid: str, names: list[str], task_size: int
) -> list[NewTask]:
    """One task per chunk of input names (sizes from `task_sizes`), each a copy of `template`
    with its own inputs.

    Task ids derive from the job, so a task published twice is the same task.
    """
    tasks = []
    start = 0
    for index, size in enumerate(task_sizes(len(names), task_size)):
        chunk = names[start : start + size]
        start += size
        task = tasks_pb2.Task()
        task.CopyFrom(template)
        task.task_id = f"{job_uid}-p{index:05d}"
        task.stage = PROCESSING
        task.input_names[:] = chunk
        tasks.append(NewTask(task.task_id, PROCESSING, len(chunk), task.SerializeToString()))
    return tasks


def export_task(
    *,
    job_uid: str,
    job_id: str,
    workspace: str,
    input_url: str,
    output_url: str,
    aggregation_format: common_pb2.AggregationFormat,
    item_count: int,
    attempt: int = 1,
    video_job: bool = False,
    failed_tasks: list[tasks_pb2.FailedTask] | None = None,
) -> NewTask:
    """The export task; the inputs of `failed_tasks` become error records in the export."""
    task = tasks_pb2.Task(
        task_id=f"{job_uid}-e00000",
        job_id=job_id,
        workspace=workspace,
        stage=EXPORT,
        input_url=input_url,
        output_url=output_url,
        aggregation_format=aggregation_format,
        max_archive_bytes=DEFAULT_MAX_ARCHIVE_BYTES,
        attempt=attempt,
        video_job=video_job,
        failed_tasks=failed_tasks or [],
    )
    return NewTask(task.task_id, EXPORT, item_count, task.SerializeToString(), attempt)


def failed_task(task_id: str, payload: bytes, error: str) -> tasks_pb2.FailedTask:
    """What the exporter needs of a processing task that failed: its inputs and why."""
    task = tasks_pb2.Task.FromString(payload)
    return tasks_pb2.FailedTask(task_id=task_id, input_names=list(task.input_names), error=error)


def for_attempt(payload: bytes, attempt: int, machine_type: str) -> bytes:
    """A task's payload for a restart: its attempt, and the machine type the job now runs on."""
    task = tasks_pb2.Task.FromString(payload)
    task.attempt = attempt
    if task.stage == PROCESSING:
        task.machine_type = MACHINE_ENUMS[machine_type]
    return task.SerializeToString()
