"""NATS JetStream: the streams, the subjects, and connecting.

Subjects:
- sluice.tasks.<cpu|gpu|export>.<job>   work queue (stream TASKS), durable pull consumers per kind
- sluice.results.<job>                  task results for the scheduler (stream RESULTS)
- sluice.events.<workspace>.<kind>      lifecycle events anyone can replay (stream EVENTS)
- sluice.workers.<cpu|gpu|export>       worker heartbeats (core NATS, not stored)
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
MAX_DELIVERIES = 5
TASK_ACK_WAIT_S = 60.0


def task_subject(kind: str, job_id: str) -> str:
    return f"sluice.tasks.{kind}.{job_id}"


def result_subject(job_id: str) -> str:
    return f"sluice.results.{job_id}"


def event_subject(workspace: str, kind: str) -> str:
    return f"sluice.events.{workspace}.{kind}"


def heartbeat_subject(kind: str) -> str:
    return f"sluice.workers.{kind}"


def task_consumer_name(kind: str) -> str:
    """The durable consumer every worker of one kind shares."""
    return f"workers-{kind}"


async def connect(url: str, name: str) -> Client:
    """Connect, retrying while the server starts."""
    for attempt in range(50):
        try:
            return await nats.connect(url, name=name, max_reconnect_attempts=-1, connect_timeout=2)
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
    """Create or update the three streams (idempotent; every service calls it at start)."""
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
            name=EVENTS_STREAM,
            subjects=["sluice.events.>"],
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            max_age=EVENTS_MAX_AGE_S,
            storage=StorageType.FILE,
        ),
    )


async def task_consumer(js: JetStreamContext, kind: str) -> JetStreamContext.PullSubscription:
    """The durable pull subscription shared by all workers of `kind` (cpu, gpu or export)."""
    return await js.pull_subscribe(
        subject=f"sluice.tasks.{kind}.*",
        durable=task_consumer_name(kind),
        stream=TASKS_STREAM,
        config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=TASK_ACK_WAIT_S,
            max_deliver=MAX_DELIVERIES,
            max_ack_pending=1000,
        ),
    )
