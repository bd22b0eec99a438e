"""Wiring the scheduler: Postgres, NATS, the gRPC server, and its background loops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import nats.errors
from google.protobuf.message import DecodeError
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from sluice import auth_schema, db, messaging
from sluice.auth import KeyRing
from sluice.config import Settings
from sluice.grpc_server import start_server, stop_server
from sluice.storage import ObjectStore
from sluice.v1 import admin_pb2_grpc, scheduler_pb2_grpc, tasks_pb2
from sluice_scheduler import admin_servicer, batch_holds
from sluice_scheduler.backlog import serve_backlog
from sluice_scheduler.coordinator import Coordinator, SchedulerOptions
from sluice_scheduler.dispatcher import KINDS
from sluice_scheduler.estimate import end_stale_estimates
from sluice_scheduler.progress_queue import ProgressQueue
from sluice_scheduler.repository import Repository
from sluice_scheduler.servicer import SchedulerServicer
from sluice_scheduler.staging_client import StagingClient
from sluice_scheduler.usage import CreditRates
from sluice_scheduler.workers_seen import WorkersSeen

log = logging.getLogger(__name__)
SERVICE_NAME = "sluice.v1.SchedulerService"
RESULTS_CONSUMER = "scheduler"
LOGS_CONSUMER = "scheduler-logs"
TICK_S = 1.0
RESULT_DEADLINE_S = 60.0
RESULTS_GROUP = 1000
"""Results recorded in one transaction at most (as many as have arrived, up to this; the
consumer's default max_ack_pending is 1000)."""
LOGS_GROUP = 50
# A task no worker reported on for this long is published again (workers report every few
# seconds while they hold one; the max-deliveries advisory normally comes first).
STRANDED_AFTER_S = messaging.TASK_ACK_WAIT_S * (messaging.MAX_DELIVERIES + 1) + 30.0
SWEEP_EVERY_S = 10.0
STALLED_EVERY_S = 5.0
"""How often jobs whose stage has every task ended, yet did not move on, are advanced again."""


async def _follow(
    js: JetStreamContext,
    subject: str,
    stream: str,
    durable: str,
    process: Callable[[list[Msg]], Awaitable[None]],
    stop: asyncio.Event,
    batch: int,
) -> None:
    """Fetch the messages of a work-queue stream in groups of up to `batch` and hand each group
    to `process`, which acks them (`_each`, `_grouped`)."""
    sub = await js.pull_subscribe(
        subject,
        durable=durable,
        stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30, max_deliver=-1),
    )
    failures = messaging.QuietFailures(log, f"fetching from {stream}")
    while not stop.is_set():
        try:
            messages: list[Msg] = await sub.fetch(batch, timeout=1)
        except TimeoutError:  # nats-py raises its own subclass or, at times, the plain one
            failures.succeeded()
            continue
        except (nats.errors.Error, OSError) as error:  # NATS away: it reconnects by itself
            failures.failed(error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            continue
        failures.succeeded()
        await process(messages)


async def _ack(msg: Msg) -> None:
    try:
        await msg.ack()
    except Exception as error:  # redelivered later; handling it again changes nothing
        log.warning("cannot ack a message on %s: %s", msg.subject, error)


async def _handled(handle: Callable[[list[Msg]], Awaitable[None]], messages: list[Msg]) -> bool:
    """Run `handle` on `messages` within the deadline; False (logged) when it failed."""
    try:
        await asyncio.wait_for(handle(messages), RESULT_DEADLINE_S)
        return True
    except Exception:
        log.exception("handling %d message(s) on %s failed", len(messages), messages[0].subject)
        return False


def _each(handle: Callable[[Msg], Awaitable[None]]) -> Callable[[list[Msg]], Awaitable[None]]:
    """Handle the messages one at a time, acking each after it was handled (nak: retried)."""

    async def one(messages: list[Msg]) -> None:
        await handle(messages[0])

    async def process(messages: list[Msg]) -> None:
        for msg in messages:
            if await _handled(one, [msg]):
                await _ack(msg)
            else:
                with contextlib.suppress(Exception):
                    await msg.nak(delay=2)

    return process


def _grouped(handle: Callable[[list[Msg]], Awaitable[None]]) -> Callable[[list[Msg]], Awaitable[None]]:
    """Handle the messages as one group and ack them all once it was handled (its writes
    committed). When the group fails, each message is tried alone, so one bad message delays
    only itself."""

    async def process(messages: list[Msg]) -> None:
        if await _handled(handle, messages):
            for msg in messages:
                await _ack(msg)
            return
        await _each(lambda msg: handle([msg]))(messages)

    return process


def _result_handler(coordinator: Coordinator) -> Callable[[list[Msg]], Awaitable[None]]:
    async def handle(messages: list[Msg]) -> None:
        results = []
        for msg in messages:
            try:
                results.append(tasks_pb2.TaskResult.FromString(msg.data))
            except DecodeError:
                log.warning("a message on %s is not a TaskResult: ignored", msg.subject)
        if results:
            await coordinator.handle_results(results)

    return handle


def _log_handler(coordinator: Coordinator) -> Callable[[Msg], Awaitable[None]]:
    async def handle(msg: Msg) -> None:
        record = tasks_pb2.WorkerLog.FromString(msg.data)
        await coordinator.handle_worker_log(msg.subject.rsplit(".", 1)[-1], record)

    return handle


def progress_queue(coordinator: Coordinator) -> ProgressQueue:
    async def record(progress: tasks_pb2.TaskProgress) -> None:
        try:
            await coordinator.handle_progress(progress)
        except Exception as error:
            log.warning("cannot record a progress report: %s", error)

    return ProgressQueue(record)


async def _subscribe_reports(
    nc: Client, js: JetStreamContext, coordinator: Coordinator, progress: ProgressQueue
) -> None:
    """Progress reports (coalesced per delivery, `progress_queue.py`) and JetStream's
    max-deliveries advisories (core NATS, lossy)."""

    async def on_progress(msg: Msg) -> None:
        try:
            progress.put(tasks_pb2.TaskProgress.FromString(msg.data))
        except DecodeError:
            log.warning("a message on %s is not a TaskProgress: ignored", msg.subject)

    async def on_max_deliveries(msg: Msg) -> None:
        try:
            advisory = json.loads(msg.data)
            seq = int(advisory["stream_seq"])
            stored = await js.get_msg(messaging.TASKS_STREAM, seq)
            task = tasks_pb2.Task.FromString(stored.data or b"")
            await coordinator.handle_max_deliveries(task.task_id, int(advisory.get("deliveries", 0)))
            await js.delete_msg(messaging.TASKS_STREAM, seq)
        except Exception as error:  # the stranded-task sweep catches what this misses
            log.warning("cannot handle a max-deliveries advisory: %s", error)

    await nc.subscribe("sluice.progress.*", queue="scheduler", cb=on_progress)
    for kind in KINDS:
        await nc.subscribe(messaging.max_deliveries_advisory(kind), queue="scheduler", cb=on_max_deliveries)


async def _supervised(name: str, loop: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    """Run a background loop until `stop`; an unexpected error is logged and the loop restarts."""
    while not stop.is_set():
        try:
            await loop()
        except Exception:
            log.exception("%s loop failed; restarting it", name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


async def _tick(coordinator: Coordinator, stop: asyncio.Event) -> None:
    """Dispatch into free slots, enforce runtime caps, repeat stops, advance the active jobs
    (at start-up), then every few seconds the stalled ones (a failure after their last result),
    and requeue stranded tasks."""
    recovered = False
    last_sweep = last_stalled = time.monotonic()
    outage = messaging.QuietFailures(log, "scheduler tick")
    while not stop.is_set():
        try:
            await coordinator.dispatch()
            await coordinator.enforce_runtime_caps()
            await coordinator.resend_stops()
            if not recovered:
                for job in await coordinator.repo.active_jobs():
                    await coordinator.advance(job["workspace"], job["job_id"])
                recovered = True
            if time.monotonic() - last_stalled > STALLED_EVERY_S:
                last_stalled = time.monotonic()
                await coordinator.advance_stalled()
            if time.monotonic() - last_sweep > SWEEP_EVERY_S:
                last_sweep = time.monotonic()
                await coordinator.requeue_stranded(STRANDED_AFTER_S)
                await end_stale_estimates(coordinator)
            outage.succeeded()
        except (nats.errors.Error, OSError) as error:  # NATS or Postgres away: next tick retries
            outage.failed(error)
        except Exception:
            log.exception("scheduler tick failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK_S)


@dataclass
class RunningScheduler:
    """A started scheduler; `stop` drains calls, ends its loops and closes its connections."""

    port: int
    coordinator: Coordinator
    _stop: asyncio.Event
    _server: grpc.aio.Server
    _health: Any
    _loops: list[asyncio.Task[None]]
    _nats: Client
    _staging: StagingClient
    _pool: asyncpg.Pool
    _backlog: asyncio.Server | None = None
    backlog_port: int | None = None

    async def stop(self) -> None:
        self._stop.set()
        if self._backlog is not None:
            self._backlog.close()
        await stop_server(self._server, self._health)
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self.coordinator.close()
        await self._nats.close()  # every publish was already acknowledged
        await self._staging.close()
        await self._pool.close()


async def start(settings: Settings, address: str, options: SchedulerOptions) -> RunningScheduler:
    """Migrate the schema, connect NATS and staging, serve SchedulerService, start the loops."""
    pool = await db.connect(settings.database_url, "scheduler")
    await db.migrate(pool, "scheduler", "sluice_scheduler")
    await db.migrate(pool, auth_schema.SCHEMA, auth_schema.PACKAGE)
    nc = await messaging.connect(
        settings.nats_url, "sluice-scheduler", settings.nats_user, settings.nats_password
    )
    js = nc.jetstream()
    await messaging.ensure_streams(js, settings)
    workers = WorkersSeen()
    staging = StagingClient(settings.staging_address, settings.internal_token)
    repo = Repository(pool)
    rates = CreditRates.from_settings(settings)
    coordinator = Coordinator(repo, staging, nc, ObjectStore(settings.store_url), workers, options, rates)

    async def on_heartbeat(msg: Msg) -> None:
        if not workers.record(msg.subject.rsplit(".", 1)[-1], msg.data):
            return
        try:  # slots appeared: fill them now rather than on the next tick
            await coordinator.dispatch()
        except Exception as error:
            log.warning("cannot dispatch to a worker just seen: %s", error)

    await nc.subscribe("sluice.workers.*", cb=on_heartbeat)
    await nc.publish(messaging.ROLL_CALL_SUBJECT, b"")
    progress = progress_queue(coordinator)
    await _subscribe_reports(nc, js, coordinator, progress)
    servicer = SchedulerServicer(repo, coordinator)
    server, health, port = await start_server(
        [
            (scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server, servicer, SERVICE_NAME),
            (
                admin_pb2_grpc.add_AdminServiceServicer_to_server,
                admin_servicer.AdminServicer(pool, settings),
                admin_servicer.SERVICE_NAME,
            ),
        ],
        address,
        KeyRing(settings.api_keys_file, settings.internal_token, pool),
    )
    try:
        await admin_servicer.sync_nats(pool, settings)
    except Exception:  # serve anyway: the next key created or revoked writes them again
        log.exception("cannot write the NATS users of the API keys")
    log.info("scheduler listening on port %d", port)
    stop = asyncio.Event()
    loops = [
        asyncio.create_task(
            _supervised(
                "results",
                lambda: _follow(
                    js,
                    "sluice.results.>",
                    messaging.RESULTS_STREAM,
                    RESULTS_CONSUMER,
                    _grouped(_result_handler(coordinator)),
                    stop,
                    RESULTS_GROUP,
                ),
                stop,
            )
        ),
        asyncio.create_task(
            _supervised(
                "logs",
                lambda: _follow(
                    js,
                    "sluice.logs.>",
                    messaging.LOGS_STREAM,
                    LOGS_CONSUMER,
                    _each(_log_handler(coordinator)),
                    stop,
                    LOGS_GROUP,
                ),
                stop,
            )
        ),
        asyncio.create_task(_supervised("progress", lambda: progress.run(stop), stop)),
        asyncio.create_task(_supervised("tick", lambda: _tick(coordinator, stop), stop)),
        asyncio.create_task(_supervised("webhooks", lambda: coordinator.webhooks.run(stop), stop)),
        asyncio.create_task(
            _supervised(
                "batch holds",
                lambda: batch_holds.renew_loop(repo, staging, options.hold_renew_s, stop),
                stop,
            )
        ),
    ]
    running = RunningScheduler(port, coordinator, stop, server, health, loops, nc, staging, pool)
    if options.backlog_address:
        running._backlog, running.backlog_port = await serve_backlog(
            options.backlog_address, coordinator.tasks.backlog
        )
        log.info("backlog for autoscalers on port %d", running.backlog_port)
    return running


async def serve(settings: Settings, address: str, options: SchedulerOptions, stop: asyncio.Event) -> None:
    """Run until `stop` is set (SIGTERM), then drain."""
    running = await start(settings, address, options)
    await stop.wait()
    log.info("scheduler stopping")
    await running.stop()
