"""Rows of the scheduler's schema as protobuf messages."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from sluice.errors import InvalidArgument
from sluice.v1 import common_pb2, scheduler_pb2
from sluice_scheduler.repository import StageProgress

JOB_STATES = {
    "queued": scheduler_pb2.JOB_STATE_QUEUED,
    "running": scheduler_pb2.JOB_STATE_RUNNING,
    "completed": scheduler_pb2.JOB_STATE_COMPLETED,
    "failed": scheduler_pb2.JOB_STATE_FAILED,
    "aborted": scheduler_pb2.JOB_STATE_ABORTED,
    "completed_with_errors": scheduler_pb2.JOB_STATE_COMPLETED_WITH_ERRORS,
    "stopped": scheduler_pb2.JOB_STATE_STOPPED,
}
JOB_STATE_NAMES = {value: name for name, value in JOB_STATES.items()}
STAGE_STATES = {
    "pending": scheduler_pb2.STAGE_STATE_PENDING,
    "running": scheduler_pb2.STAGE_STATE_RUNNING,
    "completed": scheduler_pb2.STAGE_STATE_COMPLETED,
    "failed": scheduler_pb2.STAGE_STATE_FAILED,
    "aborted": scheduler_pb2.STAGE_STATE_ABORTED,
    "stopped": scheduler_pb2.STAGE_STATE_STOPPED,
}
TASK_STATES = {
    "pending": scheduler_pb2.TASK_STATE_WAITING,
    "queued": scheduler_pb2.TASK_STATE_QUEUED,
    "running": scheduler_pb2.TASK_STATE_RUNNING,
    "done": scheduler_pb2.TASK_STATE_DONE,
    "failed": scheduler_pb2.TASK_STATE_FAILED,
    "interrupted": scheduler_pb2.TASK_STATE_INTERRUPTED,
}
MACHINE_TYPES = {
    "cpu": common_pb2.MACHINE_TYPE_CPU,
    "gpu": common_pb2.MACHINE_TYPE_GPU,
    "export": common_pb2.MACHINE_TYPE_UNSPECIFIED,
}
INPUT_TYPES = {"images": common_pb2.BATCH_TYPE_IMAGES, "videos": common_pb2.BATCH_TYPE_VIDEOS}
FORMATS = {"jsonl": common_pb2.AGGREGATION_FORMAT_JSONL, "csv": common_pb2.AGGREGATION_FORMAT_CSV}


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def workflow(row: asyncpg.Record) -> scheduler_pb2.Workflow:
    return scheduler_pb2.Workflow(
        workflow_id=row["workflow_id"],
        version=row["version"],
        definition_json=row["definition"],
        created_at=timestamp(row["created_at"]),
    )


def stage(progress: StageProgress) -> scheduler_pb2.Stage:
    return scheduler_pb2.Stage(
        name=progress.name,
        state=STAGE_STATES[progress.state],
        tasks_done=progress.tasks_done,
        tasks_total=progress.tasks_total,
        items_done=progress.items_done,
        items_total=progress.items_total,
        items_failed=progress.items_failed,
        output_batch_id=progress.output_batch_id,
        machine_type=MACHINE_TYPES[progress.machine_type],
        task_counts=scheduler_pb2.TaskCounts(
            waiting=progress.waiting,
            queued=progress.queued,
            running=progress.running,
            done=progress.done,
            failed=progress.failed,
            interrupted=progress.interrupted,
        ),
    )


def job_state_name(value: int) -> str:
    name = JOB_STATE_NAMES.get(value)  # type: ignore[call-overload]
    if name is None:
        raise InvalidArgument(f"unknown job state {value}")
    return name


def task(row: asyncpg.Record) -> scheduler_pb2.TaskInfo:
    return scheduler_pb2.TaskInfo(
        task_id=row["task_id"],
        stage=row["stage"],
        state=TASK_STATES[row["state"]],
        items_done=row["items_done"],
        items_total=row["item_count"],
        items_failed=row["items_failed"],
        worker_id=row["worker_id"],
        deliveries=row["deliveries"],
        machine_seconds=row["machine_seconds"],
        error=row["error"],
    )


def log_record(row: asyncpg.Record) -> scheduler_pb2.LogRecord:
    return scheduler_pb2.LogRecord(
        time=timestamp(row["time"]),
        severity=row["severity"],
        source=row["source"],
        task_id=row["task_id"],
        message=row["message"],
    )


def job(
    row: asyncpg.Record,
    stages: list[StageProgress],
    notice: str,
    machine_seconds: float = 0.0,
    tasks: list[asyncpg.Record] | None = None,
    usage: scheduler_pb2.Usage | None = None,
) -> scheduler_pb2.Job:
    message = scheduler_pb2.Job(
        job_id=row["job_id"],
        workflow_id=row["workflow_id"],
        workflow_version=row["workflow_version"],
        batch_id=row["batch_id"],
        state=JOB_STATES[row["state"]],
        current_stage=row["current_stage"],
        machine_type=MACHINE_TYPES[row["machine_type"]],
        workers_per_machine=row["workers_per_machine"],
        save_image_outputs=row["save_image_outputs"],
        aggregation_format=FORMATS[row["aggregation_format"]],
        stages=[stage(s) for s in stages],
        notice=notice,
        error=row["error"],
        created_at=timestamp(row["created_at"]),
        updated_at=timestamp(row["updated_at"]),
        max_image_failure_rate=row["max_failure_rate"],
        workflow_params_json=row["workflow_params"],
        image_outputs_to_save=list(row["image_outputs_to_save"]),
        attempt=row["attempt"],
        max_runtime_seconds=row["max_runtime_s"],
        machine_seconds=machine_seconds,
        max_parallel_tasks=row["max_parallel_tasks"],
        priority=row["priority"],
        tasks=[task(t) for t in tasks or []],
        input_type=INPUT_TYPES.get(row["input_type"], common_pb2.BATCH_TYPE_IMAGES),
        max_video_fps=row["max_video_fps"],
        video_segment_seconds=row["video_segment_s"],
        notifications_url=row["notifications_url"],
    )
    if usage is not None:
        message.usage.CopyFrom(usage)
    if row["started_at"] is not None:
        message.started_at.CopyFrom(timestamp(row["started_at"]))
    if row["ended_at"] is not None:
        message.ended_at.CopyFrom(timestamp(row["ended_at"]))
    return message
