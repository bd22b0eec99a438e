"""A job's events read back from its workspace's events stream, for ListEvents.

An ephemeral pull consumer (no acks, in memory, gone 30 s after its last use) reads the stream in
order from a minute before the job was created; the events of other jobs and of batches are
skipped. The reader knows it has caught up from each message's count of those still pending.
Without `follow` it ends there; with it, it keeps reading until it has seen the job's terminal
event with nothing after it and the job is finished in the database (a terminal event followed
by a restart is not the end), or the caller goes away. A consumer that vanished (NATS restarted)
is made again from the next sequence, so nothing is read twice or skipped.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import nats.errors
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from sluice import messaging
from sluice.errors import Unavailable
from sluice.v1 import events_pb2
from sluice_scheduler.events import TERMINAL_EVENTS

log = logging.getLogger(__name__)

FETCH_BATCH = 256
WAIT_S = 1.0  # one pull waits at most this long for a new event
START_MARGIN = timedelta(seconds=60)  # read from this long before the job's creation (clock skew)
# A finished job whose terminal event never shows (it outlived the stream's retention) ends a
# follow once nothing came for this long.
NO_TERMINAL_EVENT_S = 5.0
CONSUMER_IDLE_S = 30.0


class _Cursor:
    """The pull consumer over one workspace's events, and the stream sequence read so far."""

    def __init__(self, js: JetStreamContext, workspace: str, start: datetime) -> None:
        self._js = messaging.events_jetstream(js, workspace)
        self._stream = messaging.events_stream(workspace)
        self._subjects = messaging.events_subjects(workspace)
        self._start = start
        self._name = ""
        self._sub: JetStreamContext.PullSubscription | None = None
        self.last_seq = 0
        self.pending = 0

    async def open(self) -> None:
        self._name = f"events-{secrets.token_hex(6)}"
        config = ConsumerConfig(
            name=self._name,
            filter_subject=self._subjects,
            ack_policy=AckPolicy.NONE,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=CONSUMER_IDLE_S,
        )
        if self.last_seq:
            config.deliver_policy, config.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, self.last_seq + 1
        else:
            config.deliver_policy, config.opt_start_time = DeliverPolicy.BY_START_TIME, self._start
        info = await self._js.add_consumer(self._stream, config)
        self.pending = info.num_pending or 0
        self._sub = await self._js.pull_subscribe_bind(consumer=self._name, stream=self._stream)

    async def next_batch(self) -> list[Msg]:
        """What came next (empty when nothing did within WAIT_S), in stream order."""
        assert self._sub is not None
        try:
            messages: list[Msg] = await self._sub.fetch(FETCH_BATCH, timeout=WAIT_S)
        except TimeoutError:  # nats-py raises its own subclass or, at times, the plain one
            return []
        except NotFoundError:  # the consumer is gone (NATS restarted): make it again
            await self.close()
            await self.open()
            return []
        fresh = []
        for msg in messages:
            meta = msg.metadata
            if meta.sequence.stream <= self.last_seq:
                continue
            self.last_seq, self.pending = meta.sequence.stream, meta.num_pending
            fresh.append(msg)
        return fresh

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        if self._name:
            with contextlib.suppress(Exception):
                await self._js.delete_consumer(self._stream, self._name)


def _event_of(msg: Msg, workspace: str, job_id: str) -> events_pb2.Event | None:
    try:
        event = events_pb2.Event.FromString(msg.data)
    except DecodeError:
        log.warning(
            "undecodable message on %s (stream sequence %d) skipped",
            msg.subject,
            msg.metadata.sequence.stream,
        )
        return None
    if event.job_id != job_id or event.workspace != workspace:
        return None
    return event


async def job_events(
    js: JetStreamContext,
    workspace: str,
    job_id: str,
    created_at: datetime,
    *,
    follow: bool,
    job_finished: Callable[[], Awaitable[bool]],
    since: datetime | None = None,
) -> AsyncIterator[events_pb2.Event]:
    """The events of `workspace`'s job `job_id`, oldest first; see the module's docstring. With
    `since`, only those whose time is at or after it (the stream is read from a minute before)."""
    await messaging.ready_events_stream(js, workspace)
    start = max(created_at, since) if since is not None else created_at
    cursor = _Cursor(js, workspace, start - START_MARGIN)
    try:
        await cursor.open()
        ended_last = False  # the last event of the job was a terminal one
        quiet_since = time.monotonic()
        while follow or cursor.pending:
            batch = await cursor.next_batch()
            for msg in batch:
                event = _event_of(msg, workspace, job_id)
                if event is not None:
                    ended_last = event.type in TERMINAL_EVENTS
                    quiet_since = time.monotonic()
                    if since is None or event.time.ToDatetime(tzinfo=UTC) >= since:
                        yield event
            if not follow or cursor.pending:
                continue
            quiet_s = time.monotonic() - quiet_since
            if (ended_last or quiet_s >= NO_TERMINAL_EVENT_S) and await job_finished():
                return
    except (nats.errors.Error, OSError) as error:
        reason = str(error) or type(error).__name__
        raise Unavailable(f"cannot read the events of workspace {workspace!r}: {reason}") from error
    finally:
        await cursor.close()
