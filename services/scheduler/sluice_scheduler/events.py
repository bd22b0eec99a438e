"""Publishing lifecycle events on the events stream (sluice.events.<workspace>.<kind>)."""

from __future__ import annotations

import secrets

from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext

from sluice.messaging import event_subject
from sluice.v1 import events_pb2

_KIND = {
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


async def publish_event(
    js: JetStreamContext,
    event_type: events_pb2.EventType,
    workspace: str,
    job_id: str,
    *,
    stage: str = "",
    message: str = "",
    items_done: int = 0,
    items_total: int = 0,
) -> None:
    now = Timestamp()
    now.GetCurrentTime()
    event = events_pb2.Event(
        event_id=secrets.token_hex(8),
        type=event_type,
        workspace=workspace,
        job_id=job_id,
        stage=stage,
        time=now,
        message=message,
        items_done=items_done,
        items_total=items_total,
    )
    await js.publish(event_subject(workspace, _KIND[event_type]), event.SerializeToString())
