"""Cutting a job's input into tasks: the messages workers receive."""

from __future__ import annotations

from sluice.v1 import common_pb2, tasks_pb2
from sluice_scheduler.repository import NewTask

PROCESSING = "processing"
EXPORT = "export"
DEFAULT_MAX_ARCHIVE_BYTES = 512 * 1024 * 1024


def processing_tasks(
    *,
    job_uid: str,
    job_id: str,
    workspace: str,
    names: list[str],
    task_size: int,
    input_url: str,
    output_url: str,
    workflow_json: str,
    save_image_outputs: bool,
    aggregation_format: common_pb2.AggregationFormat,
    machine_type: common_pb2.MachineType,
) -> list[NewTask]:
    """One task per `task_size` input names; task ids derive from the job so reruns match."""
    tasks = []
    for index, start in enumerate(range(0, len(names), task_size)):
        chunk = names[start : start + task_size]
        task = tasks_pb2.Task(
            task_id=f"{job_uid}-p{index:05d}",
            job_id=job_id,
            workspace=workspace,
            stage=PROCESSING,
            input_names=chunk,
            input_url=input_url,
            output_url=output_url,
            workflow_json=workflow_json,
            save_image_outputs=save_image_outputs,
            aggregation_format=aggregation_format,
            machine_type=machine_type,
        )
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
) -> NewTask:
    task = tasks_pb2.Task(
        task_id=f"{job_uid}-e00000",
        job_id=job_id,
        workspace=workspace,
        stage=EXPORT,
        input_url=input_url,
        output_url=output_url,
        aggregation_format=aggregation_format,
        max_archive_bytes=DEFAULT_MAX_ARCHIVE_BYTES,
    )
    return NewTask(task.task_id, EXPORT, item_count, task.SerializeToString())
