"""Job, stage and task states as people read them (the CLI and the dashboard) and the CLI accepts them."""

from __future__ import annotations

from sluice.v1 import scheduler_pb2

JOB_STATES = {
    scheduler_pb2.JOB_STATE_QUEUED: "queued",
    scheduler_pb2.JOB_STATE_RUNNING: "running",
    scheduler_pb2.JOB_STATE_COMPLETED: "completed",
    scheduler_pb2.JOB_STATE_COMPLETED_WITH_ERRORS: "completed with errors",
    scheduler_pb2.JOB_STATE_FAILED: "failed",
    scheduler_pb2.JOB_STATE_ABORTED: "aborted",
    scheduler_pb2.JOB_STATE_STOPPED: "stopped",
}
# What --state takes: the printed names with '-' for spaces.
JOB_STATE_CHOICES = {name.replace(" ", "-"): value for value, name in JOB_STATES.items()}
STAGE_STATES = {
    scheduler_pb2.STAGE_STATE_PENDING: "pending",
    scheduler_pb2.STAGE_STATE_RUNNING: "running",
    scheduler_pb2.STAGE_STATE_COMPLETED: "completed",
    scheduler_pb2.STAGE_STATE_FAILED: "failed",
    scheduler_pb2.STAGE_STATE_ABORTED: "aborted",
    scheduler_pb2.STAGE_STATE_STOPPED: "stopped",
}
TASK_STATES = {
    scheduler_pb2.TASK_STATE_WAITING: "waiting",
    scheduler_pb2.TASK_STATE_QUEUED: "queued",
    scheduler_pb2.TASK_STATE_RUNNING: "running",
    scheduler_pb2.TASK_STATE_DONE: "done",
    scheduler_pb2.TASK_STATE_FAILED: "failed",
    scheduler_pb2.TASK_STATE_INTERRUPTED: "interrupted",
}
SEVERITIES = {
    scheduler_pb2.LOG_SEVERITY_INFO: "info",
    scheduler_pb2.LOG_SEVERITY_WARNING: "warning",
    scheduler_pb2.LOG_SEVERITY_ERROR: "error",
}
SEVERITY_CHOICES = {name: value for value, name in SEVERITIES.items()}
ENDED = {
    scheduler_pb2.JOB_STATE_COMPLETED,
    scheduler_pb2.JOB_STATE_COMPLETED_WITH_ERRORS,
    scheduler_pb2.JOB_STATE_FAILED,
    scheduler_pb2.JOB_STATE_ABORTED,
    scheduler_pb2.JOB_STATE_STOPPED,
}
SUCCEEDED = {scheduler_pb2.JOB_STATE_COMPLETED, scheduler_pb2.JOB_STATE_COMPLETED_WITH_ERRORS}


def task_counts(counts: scheduler_pb2.TaskCounts) -> str:
    """'3 running, 2 queued, 10 done' (states with none left out)."""
    parts = [
        (counts.running, "running"),
        (counts.queued, "queued"),
        (counts.waiting, "waiting"),
        (counts.done, "done"),
        (counts.failed, "failed"),
        (counts.interrupted, "interrupted"),
    ]
    return ", ".join(f"{n} {name}" for n, name in parts if n) or "-"
