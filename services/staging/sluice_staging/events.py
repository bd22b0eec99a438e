"""Events staging publishes on the events stream (sluice.events.<workspace>.<kind>)."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js import JetStreamContext

from sluice.ids import new_id
from sluice.messaging import event_subject
from sluice.v1 import events_pb2

BATCH_INGESTED = "batch_ingested"
PUBLISH_TIMEOUT_S = 5.0


def batch_ingested(workspace: str, batch_id: str, files_stored: int) -> events_pb2.Event:
    noun = "file" if files_stored == 1 else "files"
    event = events_pb2.Event(
        event_id=new_id("event"),
        type=events_pb2.EVENT_TYPE_BATCH_INGESTED,
        workspace=workspace,
        batch_id=batch_id,
        message=f"{files_stored} {noun} stored",
        items_done=files_stored,
        items_total=files_stored,
    )
    event.time.FromDatetime(datetime.now(UTC))
    return event


async def publish(js: JetStreamContext, event: events_pb2.Event, kind: str) -> None:
    """Publish to the events stream; the event id doubles as the de-duplication id."""
    await js.publish(
        event_subject(event.workspace, kind),
        event.SerializeToString(),
        timeout=PUBLISH_TIMEOUT_S,
        headers={"Nats-Msg-Id": event.event_id},
    )
