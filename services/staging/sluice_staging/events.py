"""Events staging publishes on the events stream (sluice.events.<workspace>.<kind>)."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js import JetStreamContext

from sluice import messaging
from sluice.ids import new_id
from sluice.v1 import events_pb2

BATCH_CREATED = "batch_created"
BATCH_INGESTED = "batch_ingested"
BATCH_EXPIRED = "batch_expired"


def batch_created(workspace: str, batch_id: str, batch_type: str) -> events_pb2.Event:
    """A new batch (state "created"), before any file of it is stored."""
    event = events_pb2.Event(
        event_id=new_id("event"),
        type=events_pb2.EVENT_TYPE_BATCH_CREATED,
        workspace=workspace,
        batch_id=batch_id,
        state="created",
        message=f"batch of {batch_type} created",
    )
    event.time.FromDatetime(datetime.now(UTC))
    return event


def batch_ingested(workspace: str, batch_id: str, files_stored: int) -> events_pb2.Event:
    noun = "file" if files_stored == 1 else "files"
    event = events_pb2.Event(
        event_id=new_id("event"),
        type=events_pb2.EVENT_TYPE_BATCH_INGESTED,
        workspace=workspace,
        batch_id=batch_id,
        state="ingested",
        message=f"{files_stored} {noun} stored",
        items_done=files_stored,
        items_total=files_stored,
    )
    event.time.FromDatetime(datetime.now(UTC))
    return event


def batch_expired(
    workspace: str, batch_id: str, *, event_id: str = "", when: datetime | None = None
) -> events_pb2.Event:
    """The batch's bytes were deleted (state "expired"); `event_id` empty: a fresh one."""
    event = events_pb2.Event(
        event_id=event_id or new_id("event"),
        type=events_pb2.EVENT_TYPE_BATCH_EXPIRED,
        workspace=workspace,
        batch_id=batch_id,
        state="expired",
        message="expired: its files were deleted",
    )
    event.time.FromDatetime(when or datetime.now(UTC))
    return event


async def publish(js: JetStreamContext, event: events_pb2.Event, kind: str) -> None:
    """Publish into the workspace's events stream (made on first use); the event id doubles as
    the de-duplication id."""
    await messaging.publish_event(js, event, kind)
