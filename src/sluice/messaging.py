"""NATS JetStream: the streams, the subjects, and connecting.

Subjects:
- sluice.tasks.<cpu|gpu|export>.<job>   work queue (stream TASKS), durable pull consumers per kind
- sluice.results.<job>                  task results for the scheduler (stream RESULTS)
- sluice.logs.<job>                     workers' log records for the scheduler (stream LOGS)
- sluice.events.<workspace>.<kind>      lifecycle events anyone can replay (stream EVENTS)
- sluice.workers.<cpu|gpu|export>       worker heartbeats (core NATS, not stored)
- sluice.progress.<job>                 a running task's progress (core NATS, lossy)
- sluice.control.<job>                  StopTasks from the scheduler to every worker (core NATS)

<job> is the job's uid (unique across workspaces). docs/contracts.md describes each message.
"""

from __future__ import annotations

import asyncio
import logging

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
from nats.js.errors import NotFoundError

log = logging.getLogger(__name__)

TASKS_STREAM = "SLUICE_TASKS"
RESULTS_STREAM = "SLUICE_RESULTS"
EVENTS_STREAM = "SLUICE_EVENTS"
EVENTS_MAX_AGE_S = 7 * 24 * 3600
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


def heartbeat_subject(kind: str) -> str:
    return f"sluice.workers.{kind}"


def task_consumer_name(kind: str) -> str:
    """The durable consumer every worker of one kind shares."""
    return f"workers-{kind}"


async def connect(url: str, name: str) -> Client:
    """Connect, retrying while the server starts.

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


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.stream_info(config.name or "")
        await js.update_stream(config)
    except NotFoundError:
        await js.add_stream(config)


async def ensure_streams(js: JetStreamContext) -> None:
    """Create or update the four streams (idempotent; every service calls it at start)."""
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
    await _ensure_stream(
        js,
        StreamConfig(
            name=EVENTS_STREAM,
            subjects=["sluice.events.>"],
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            max_age=EVENTS_MAX_AGE_S,
            storage=StorageType.FILE,
        ),
    )


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
    return await js.pull_subscribe(
        subject=f"sluice.tasks.{kind}.*",
        durable=task_consumer_name(kind),
        stream=TASKS_STREAM,
        config=config,
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
