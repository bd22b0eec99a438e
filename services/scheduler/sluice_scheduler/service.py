"""Wiring the scheduler: Postgres, NATS, the gRPC server, and its background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from sluice import db, messaging
from sluice.auth import KeyRing
from sluice.config import Settings
from sluice.grpc_server import start_server, stop_server
from sluice.storage import ObjectStore
from sluice.v1 import scheduler_pb2_grpc, tasks_pb2
from sluice_scheduler.coordinator import Coordinator, SchedulerOptions
from sluice_scheduler.repository import Repository
from sluice_scheduler.servicer import SchedulerServicer
from sluice_scheduler.staging_client import StagingClient
from sluice_scheduler.workers_seen import WorkersSeen

log = logging.getLogger(__name__)
SERVICE_NAME = "sluice.v1.SchedulerService"
RESULTS_CONSUMER = "scheduler"
TICK_S = 1.0
RESULT_DEADLINE_S = 60.0


async def _follow_results(js: JetStreamContext, coordinator: Coordinator, stop: asyncio.Event) -> None:
    sub = await js.pull_subscribe(
        "sluice.results.>",
        durable=RESULTS_CONSUMER,
        stream=messaging.RESULTS_STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30, max_deliver=-1),
    )
    while not stop.is_set():
        try:
            messages: list[Msg] = await sub.fetch(50, timeout=1)
        except TimeoutError:  # nats-py raises its own subclass or, at times, the plain one
            continue
        for msg in messages:
            try:
                result = tasks_pb2.TaskResult.FromString(msg.data)
                await asyncio.wait_for(coordinator.handle_result(result), RESULT_DEADLINE_S)
            except Exception:
                log.exception("handling a task result failed; it will be retried")
                await msg.nak(delay=2)
                continue
            await msg.ack()


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
    """Publish tasks left unpublished, start jobs whose workers arrived, finish stalled stages."""
    recovered = False
    while not stop.is_set():
        try:
            await coordinator.publish_pending()
            await coordinator.start_waiting_jobs()
            if not recovered:
                for job in await coordinator.repo.active_jobs():
                    await coordinator.advance(job["workspace"], job["job_id"])
                recovered = True
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

    async def stop(self) -> None:
        self._stop.set()
        await stop_server(self._server, self._health)
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self._nats.close()  # every publish was already acknowledged
        await self._staging.close()
        await self._pool.close()


async def start(settings: Settings, address: str, options: SchedulerOptions) -> RunningScheduler:
    """Migrate the schema, connect NATS and staging, serve SchedulerService, start the loops."""
    pool = await db.connect(settings.database_url, "scheduler")
    await db.migrate(pool, "scheduler", "sluice_scheduler")
    nc = await messaging.connect(settings.nats_url, "sluice-scheduler")
    js = nc.jetstream()
    await messaging.ensure_streams(js)
    workers = WorkersSeen()

    async def on_heartbeat(msg: Msg) -> None:
        workers.record(msg.subject.rsplit(".", 1)[-1], msg.data)

    await nc.subscribe("sluice.workers.*", cb=on_heartbeat)
    staging = StagingClient(settings.staging_address, settings.internal_token)
    repo = Repository(pool)
    coordinator = Coordinator(repo, staging, js, ObjectStore(settings.store_url), workers, options)
    servicer = SchedulerServicer(repo, coordinator)
    server, health, port = await start_server(
        [(scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server, servicer, SERVICE_NAME)],
        address,
        KeyRing(settings.api_keys_file, settings.internal_token),
    )
    log.info("scheduler listening on port %d", port)
    stop = asyncio.Event()
    loops = [
        asyncio.create_task(_supervised("results", lambda: _follow_results(js, coordinator, stop), stop)),
        asyncio.create_task(_supervised("tick", lambda: _tick(coordinator, stop), stop)),
    ]
    return RunningScheduler(port, coordinator, stop, server, health, loops, nc, staging, pool)


async def serve(settings: Settings, address: str, options: SchedulerOptions, stop: asyncio.Event) -> None:
    """Run until `stop` is set (SIGTERM), then drain."""
    running = await start(settings, address, options)
    await stop.wait()
    log.info("scheduler stopping")
    await running.stop()
