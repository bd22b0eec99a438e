"""Starting and stopping the staging service: database, NATS, then the gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc
from nats.aio.client import Client

from sluice import auth_schema, db, grpc_server, messaging
from sluice.auth import KeyRing
from sluice.config import Settings
from sluice.storage import ObjectStore
from sluice.v1 import models_pb2_grpc, staging_pb2_grpc
from sluice_staging.expiry import Expiry
from sluice_staging.model_repository import ModelRepository
from sluice_staging.models_servicer import ModelServicer
from sluice_staging.notifications import BatchEvents
from sluice_staging.repository import Repository
from sluice_staging.servicer import StagingOptions, StagingServicer

log = logging.getLogger(__name__)

SCHEMA = "staging"
SERVICE_NAME = "sluice.v1.StagingService"
MODEL_SERVICE_NAME = "sluice.v1.ModelService"


@dataclass
class RunningStaging:
    """A started staging service; `stop` drains calls and closes its connections."""

    port: int
    server: grpc.aio.Server
    health: Any
    pool: asyncpg.Pool
    nats: Client
    expiry: Expiry | None = None
    """The expiry sweep (its loop runs every StagingOptions.expiry_sweep_s; tests call `sweep`)."""
    loops: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def stop(self) -> None:
        self.stopping.set()
        try:
            await grpc_server.stop_server(self.server, self.health)
        finally:
            # A purge cut short rolls back and runs again at the next start (expiry.py).
            _, pending = await asyncio.wait(self.loops, timeout=5.0) if self.loops else (set(), set())
            for loop in pending:
                loop.cancel()
            await asyncio.gather(*self.loops, return_exceptions=True)
            await self.pool.close()
            await self.nats.close()


async def start(settings: Settings, address: str, options: StagingOptions) -> RunningStaging:
    """Migrate the schema, connect NATS and serve StagingService and ModelService at `address`
    (port 0: any)."""
    if not settings.database_url or not settings.store_url:
        raise ValueError("staging needs SLUICE_DATABASE_URL and SLUICE_STORE_URL")
    async with contextlib.AsyncExitStack() as cleanup:
        pool = await db.connect(settings.database_url)
        cleanup.push_async_callback(pool.close)
        await db.migrate(pool, SCHEMA, "sluice_staging")
        await db.migrate(pool, auth_schema.SCHEMA, auth_schema.PACKAGE)
        nc = await messaging.connect(
            settings.nats_url, "sluice-staging", settings.nats_user, settings.nats_password
        )
        cleanup.push_async_callback(nc.close)
        js = nc.jetstream()
        await messaging.ensure_streams(js, settings)
        store = ObjectStore(settings.store_url)
        repository = Repository(pool)
        batch_events = BatchEvents(pool, options.webhooks)
        servicer = StagingServicer(repository, store, js, options, batch_events)
        models = ModelServicer(ModelRepository(pool), store, options.max_model_bytes)
        server, health, port = await grpc_server.start_server(
            [
                (staging_pb2_grpc.add_StagingServiceServicer_to_server, servicer, SERVICE_NAME),
                (models_pb2_grpc.add_ModelServiceServicer_to_server, models, MODEL_SERVICE_NAME),
            ],
            address,
            KeyRing(settings.api_keys_file, settings.internal_token, pool),
        )
        cleanup.pop_all()
    log.info("staging serving on port %d (part size %d)", port, options.part_size)
    running = RunningStaging(port, server, health, pool, nc)
    running.expiry = Expiry(repository, store, js, options.clock, publish=batch_events.publish)
    running.loops.append(asyncio.create_task(batch_events.run(running.stopping)))
    if options.expiry_sweep_s > 0:
        sweeping = running.expiry.run(options.expiry_sweep_s, running.stopping)
        running.loops.append(asyncio.create_task(sweeping))
    return running
