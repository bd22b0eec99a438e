"""A job's lifecycle events (sluice.events.<workspace>.<kind>): what each holds, and publishing.

`notifications.JobEvents` builds them from the job as it is and sends them (stream and webhook).
"""

from __future__ import annotations

import secrets

from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext

from sluice import messaging
from sluice.v1 import events_pb2

# A job's attempt ends with exactly one of these.
TERMINAL_EVENTS = frozenset(
    {
        events_pb2.EVENT_TYPE_JOB_COMPLETED,
        events_pb2.EVENT_TYPE_JOB_COMPLETED_WITH_ERRORS,
        events_pb2.EVENT_TYPE_JOB_FAILED,
        events_pb2.EVENT_TYPE_JOB_ABORTED,
        events_pb2.EVENT_TYPE_JOB_STOPPED,
    }
)
KINDS = {
    events_pb2.EVENT_TYPE_JOB_CREATED: "job_created",
    events_pb2.EVENT_TYPE_STAGE_STARTED: "stage_started",
    events_pb2.EVENT_TYPE_PROGRESS: "progress",
    events_pb2.EVENT_TYPE_JOB_COMPLETED: "job_completed",
    events_pb2.EVENT_TYPE_JOB_FAILED: "job_failed",
    events_pb2.EVENT_TYPE_JOB_ABORTED: "job_aborted",
    events_pb2.EVENT_TYPE_JOB_STOPPED: "job_stopped",
    events_pb2.EVENT_TYPE_JOB_RESTARTED: "job_restarted",
    events_pb2.EVENT_TYPE_JOB_COMPLETED_WITH_ERRORS: "job_completed_with_errors",
}


def job_event(
    event_type: events_pb2.EventType,
    workspace: str,
    job_id: str,
    *,
    state: str,
    attempt: int,
    machine_seconds: float,
    stage: str = "",
    message: str = "",
    items_done: int = 0,
    items_total: int = 0,
) -> events_pb2.Event:
    """An event of a job, stamped now: its state after the change, its attempt, the machine
    time it used so far and the items of `stage`."""
    now = Timestamp()
    now.GetCurrentTime()
    return events_pb2.Event(
        event_id=secrets.token_hex(8),
        type=event_type,
        workspace=workspace,
        job_id=job_id,
        stage=stage,
        time=now,
        message=message,
        items_done=items_done,
        items_total=items_total,
        state=state,
        attempt=attempt,
        machine_seconds=machine_seconds,
    )


async def publish(js: JetStreamContext, event: events_pb2.Event, kind: str) -> None:
    """Publish into the workspace's events stream (made on first use); the event id doubles as
    the de-duplication id."""
    await messaging.publish_event(js, event, kind)
