"""NATS JetStream: the streams, the subjects, and connecting.

Subjects:
- sluice.tasks.<cpu|gpu|export>.<job>   work queue (stream TASKS), durable pull consumers per kind
- sluice.results.<job>                  task results for the scheduler (stream RESULTS)
- sluice.logs.<job>                     workers' log records for the scheduler (stream LOGS)
- sluice.events.<workspace>.<kind>      lifecycle events, kept for replay in the workspace's stream
                                        SLUICE_EVENTS_<workspace> (docs/events.md)
- sluice.workers.<cpu|gpu|export>       worker heartbeats (core NATS, not stored)
- sluice.roll-call                       the scheduler, on start: every worker heartbeats now (core NATS)
- sluice.progress.<job>                 a running task's progress (core NATS, lossy)
- sluice.control.<job>                  StopTasks from the scheduler to every worker (core NATS)

<job> is the job's uid (unique across workspaces). docs/contracts.md describes each message.

Where NATS authorization is on (the local stack), each workspace's events stream lives in a NATS
account of its own, `WS_<workspace>`, with that workspace's API-key users (`sluice.nats_auth`):
the services publish events into it through a service import and manage its stream through
`$JS.WS_<workspace>.API`, so whatever a key user makes JetStream send (a push consumer's deliver
subject, a reply subject) stays inside its own workspace's account. `configure_events` tells a
connection which way it is.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NoStreamResponseError, NotFoundError, ServerError, ServiceUnavailableError

from sluice.config import Settings
from sluice.errors import Unavailable
from sluice.v1 import events_pb2

log = logging.getLogger(__name__)
T = TypeVar("T")
_RELOADING = (nats.errors.NoRespondersError, ServiceUnavailableError, ServerError)

TASKS_STREAM = "SLUICE_TASKS"
RESULTS_STREAM = "SLUICE_RESULTS"
# The one events stream of every workspace before issue 8; deleted at start (its subjects overlap
# the workspaces' streams).
LEGACY_EVENTS_STREAM = "SLUICE_EVENTS"
EVENTS_MAX_AGE_S = 7 * 24 * 3600.0
EVENTS_PUBLISH_TIMEOUT_S = 5.0
# Retries of a JetStream request while nats-server reloads (RELOAD_WAIT_S apart): for the work
# streams, and for a workspace's events stream whose account may be new.
RELOAD_TRIES, ACCOUNT_TRIES, RELOAD_WAIT_S = 12, 8, 0.25
_WORKSPACE = re.compile(r"^[a-z0-9_-]{1,64}$")  # sluice.ids' rule: safe in subjects and names
_KIND = re.compile(r"^[a-z0-9_]{1,64}$")
LOGS_STREAM = "SLUICE_LOGS"
MAX_DELIVERIES = 5
# A worker that dies loses its tasks to another within this; live workers send in-progress
# acks every few seconds (IN_PROGRESS_S) so their long tasks are kept.
TASK_ACK_WAIT_S = 12.0
IN_PROGRESS_S = 3.0


def task_subject(kind: str, job_id: str) -> str:
    return f"sluice.tasks.{kind}.{job_id}"


def result_subject(job_id: str) -> str:
    return f"sluice.results.{job_id}"


def logs_subject(job_id: str) -> str:
    return f"sluice.logs.{job_id}"


def progress_subject(job_id: str) -> str:
    return f"sluice.progress.{job_id}"


def control_subject(job_id: str) -> str:
    return f"sluice.control.{job_id}"


def max_deliveries_advisory(kind: str) -> str:
    """JetStream's advisory when a task of `kind` reached its last delivery without an ack."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{TASKS_STREAM}.{task_consumer_name(kind)}"


def event_subject(workspace: str, kind: str) -> str:
    return f"sluice.events.{workspace}.{kind}"


def events_subjects(workspace: str) -> str:
    """Every event subject of `workspace` (what its stream holds and its key users may read)."""
    return f"sluice.events.{_checked(workspace)}.>"


def events_stream(workspace: str) -> str:
    """The JetStream stream that keeps `workspace`'s events."""
    return f"SLUICE_EVENTS_{_checked(workspace)}"


def events_account(workspace: str) -> str:
    """The NATS account of `workspace`'s events stream and key users, where authorization is on."""
    return f"WS_{_checked(workspace)}"


def _checked(workspace: str) -> str:
    if not _WORKSPACE.match(workspace):
        raise ValueError(f"not a workspace name: {workspace!r}")
    return workspace


def heartbeat_subject(kind: str) -> str:
    return f"sluice.workers.{kind}"


ROLL_CALL_SUBJECT = "sluice.roll-call"
"""An empty message the scheduler publishes on start; every worker and exporter answers with a
heartbeat at once, so a job submitted right after `sluice up` (or a scheduler restart) does not
wait up to a heartbeat interval for the scheduler to learn of the slots."""


def task_consumer_name(kind: str) -> str:
    """The durable consumer every worker of one kind shares."""
    return f"workers-{kind}"


async def connect(url: str, name: str, user: str = "", password: str = "") -> Client:
    """Connect, retrying while the server starts; `user` and `password` when NATS asks for them.

    nats-py logs each asynchronous error at ERROR with a traceback, several per server restart.
    Here a lost connection and its return are one WARNING line each, the failed attempts between
    them DEBUG lines, and any other error one ERROR line; none carries a traceback.
    """

    async def connect_once() -> Client:
        client = Client()

        async def on_error(error: Exception) -> None:
            reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            # The end of the stream comes just before the disconnect; attempts follow it.
            if client.is_reconnecting or isinstance(error, nats.errors.UnexpectedEOF):
                log.debug("NATS (%s): %s", name, reason)
            else:
                log.error("NATS error (%s): %s", name, reason)

        async def on_disconnected() -> None:
            if not client.is_closed:  # close() and drain() call this too
                log.warning("lost the NATS connection to %s (%s); reconnecting", url, name)

        async def on_reconnected() -> None:
            log.warning("reconnected to NATS at %s (%s)", url, name)

        await client.connect(
            url,
            name=name,
            user=user or None,
            password=password or None,
            max_reconnect_attempts=-1,
            connect_timeout=2,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
        return client

    for attempt in range(50):
        try:
            return await connect_once()
        except (OSError, nats.errors.NoServersError):
            if attempt == 49:
                raise
            await asyncio.sleep(0.2)
    raise RuntimeError("unreachable")


async def while_reloading(call: Callable[[], Awaitable[T]], tries: int = RELOAD_TRIES) -> T:
    """`call()`, again while JetStream does not answer: nats-server answers no JetStream request
    for a moment while it reloads its accounts (after a key or a workspace changed, where NATS
    authorization is on), and a new account's JetStream may fail its first requests (500)."""
    for attempt in range(tries):
        try:
            return await call()
        except _RELOADING:
            if attempt == tries - 1:
                raise
            await asyncio.sleep(RELOAD_WAIT_S)
    raise RuntimeError("unreachable")


async def _ensure_stream(js: JetStreamContext, config: StreamConfig, tries: int = RELOAD_TRIES) -> None:
    async def ensure() -> None:
        try:
            await js.stream_info(config.name or "")
            await js.update_stream(config)
        except NotFoundError:
            await js.add_stream(config)

    await while_reloading(ensure, tries)


async def ensure_streams(js: JetStreamContext, settings: Settings | None = None) -> None:
    """Create or update the work streams and delete the old shared events stream (idempotent;
    every service calls it at start). With `settings`, the connection publishes events as they
    say (`configure_events`); the workspaces' events streams are made on first use."""
    if settings is not None:
        configure_events(
            js, settings.events_max_age_s, workspace_accounts=settings.nats_users_file is not None
        )
    await _ensure_stream(
        js,
        StreamConfig(
            name=TASKS_STREAM,
            subjects=["sluice.tasks.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
        ),
    )
    await _ensure_stream(
        js,
        StreamConfig(
            name=RESULTS_STREAM,
            subjects=["sluice.results.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
        ),
    )
    await _ensure_stream(
        js,
        StreamConfig(
            name=LOGS_STREAM,
            subjects=["sluice.logs.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
        ),
    )
    try:
        await while_reloading(lambda: js.delete_stream(LEGACY_EVENTS_STREAM))
        log.info("deleted the old events stream %s (events are kept per workspace now)", LEGACY_EVENTS_STREAM)
    except NotFoundError:
        pass


@dataclass
class _EventsSetup:
    """How one connection publishes events, and the workspaces whose stream it has made."""

    max_age_s: float = EVENTS_MAX_AGE_S
    workspace_accounts: bool = False
    ready: set[str] = field(default_factory=set)
    contexts: dict[str, JetStreamContext] = field(default_factory=dict)


_SETUPS: weakref.WeakKeyDictionary[Client, _EventsSetup] = weakref.WeakKeyDictionary()


def _setup(js: JetStreamContext) -> _EventsSetup:
    client: Client = js._nc
    found = _SETUPS.get(client)
    if found is None:
        found = _SETUPS[client] = _EventsSetup()
    return found


def configure_events(js: JetStreamContext, max_age_s: float, *, workspace_accounts: bool) -> None:
    """How long `js`'s connection keeps events and whether each workspace's stream lives in its
    own NATS account (NATS authorization by `sluice.nats_auth`, as in the local stack)."""
    setup = _setup(js)
    setup.max_age_s, setup.workspace_accounts = max_age_s, workspace_accounts
    setup.ready.clear()
    setup.contexts.clear()


def events_jetstream(js: JetStreamContext, workspace: str) -> JetStreamContext:
    """The JetStream API that manages `workspace`'s events stream: `js` itself, or where each
    workspace has its own account, that account's API as imported by the services' account."""
    setup = _setup(js)
    if not setup.workspace_accounts:
        return js
    context = setup.contexts.get(workspace)
    if context is None:
        prefix = f"$JS.{events_account(workspace)}.API"
        context = setup.contexts[workspace] = js._nc.jetstream(
            prefix=prefix, timeout=EVENTS_PUBLISH_TIMEOUT_S
        )
    return context


async def ensure_events_stream(js: JetStreamContext, workspace: str) -> None:
    """Create `workspace`'s events stream, or bring its retention to this connection's."""
    setup = _setup(js)
    config = StreamConfig(
        name=events_stream(workspace),
        subjects=[events_subjects(workspace)],
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_age=setup.max_age_s,
        storage=StorageType.FILE,
    )
    # A new workspace's account appears once nats-server has reloaded the users file, a moment
    # after the scheduler wrote it: wait that long for its JetStream API to answer.
    try:
        await _ensure_stream(events_jetstream(js, workspace), config, ACCOUNT_TRIES)
    except _RELOADING:
        if not setup.workspace_accounts:
            raise
        raise Unavailable(
            f"NATS has no account for workspace {workspace!r}: the scheduler writes it when a "
            "workspace or key is created and when it starts"
        ) from None
    setup.ready.add(workspace)


async def ready_events_stream(js: JetStreamContext, workspace: str) -> None:
    """Make `workspace`'s events stream unless this connection made it already."""
    if workspace not in _setup(js).ready:
        await ensure_events_stream(js, workspace)


async def publish_event(js: JetStreamContext, event: events_pb2.Event, kind: str) -> None:
    """Publish `event` on sluice.events.<its workspace>.<kind> into its workspace's stream, which
    is made on the connection's first event of the workspace and again if it was deleted. The
    event id is the Nats-Msg-Id, so a publish repeated within two minutes is stored once."""
    if not _KIND.match(kind):
        raise ValueError(f"not an event kind: {kind!r}")
    workspace = _checked(event.workspace)
    setup = _setup(js)
    await ready_events_stream(js, workspace)
    subject, data = event_subject(workspace, kind), event.SerializeToString()
    headers = {"Nats-Msg-Id": event.event_id} if event.event_id else None
    try:
        await js.publish(subject, data, timeout=EVENTS_PUBLISH_TIMEOUT_S, headers=headers)
    except NoStreamResponseError:  # the stream was deleted since: make it again
        setup.ready.discard(workspace)
        await ensure_events_stream(js, workspace)
        await js.publish(subject, data, timeout=EVENTS_PUBLISH_TIMEOUT_S, headers=headers)


async def task_consumer(js: JetStreamContext, kind: str) -> JetStreamContext.PullSubscription:
    """The durable pull subscription shared by all workers of `kind` (cpu, gpu or export).

    The consumer is created or updated first, so a stack made by an older version gets the
    current ack wait (a consumer that exists keeps its config otherwise).
    """
    config = task_consumer_config(kind)
    try:
        await js.add_consumer(TASKS_STREAM, config)
    except Exception as error:  # pull_subscribe below reports what really matters
        log.warning("cannot create or update consumer %s: %s", config.durable_name, error)
    return await while_reloading(
        lambda: js.pull_subscribe(
            subject=f"sluice.tasks.{kind}.*",
            durable=task_consumer_name(kind),
            stream=TASKS_STREAM,
            config=config,
        )
    )


def task_consumer_config(kind: str) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=task_consumer_name(kind),
        filter_subject=f"sluice.tasks.{kind}.*",
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=TASK_ACK_WAIT_S,
        max_deliver=MAX_DELIVERIES,
        max_ack_pending=1000,
    )


class QuietFailures:
    """Logs the first failure of a call repeated in a loop at WARNING, the next ones at DEBUG,
    and the first success after them at INFO: a NATS outage is two lines, not one a second."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._log = logger
        self._what = what
        self._failing = 0

    def failed(self, error: BaseException) -> None:
        self._failing += 1
        level = logging.WARNING if self._failing == 1 else logging.DEBUG
        self._log.log(level, "%s failed: %s", self._what, error or type(error).__name__)

    def succeeded(self) -> None:
        if self._failing:
            self._log.info("%s works again (after %d failures)", self._what, self._failing)
            self._failing = 0
