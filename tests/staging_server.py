"""A real staging service on a free port for tests (Postgres, NATS and the object store of the
`settings` fixture), and a gRPC stub connected to it; a clock tests move instead of waiting."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from sluice.clients import aio_channel, staging_stub
from sluice.config import Settings
from sluice_staging.server import RunningStaging, start
from sluice_staging.servicer import StagingOptions


class MovableClock:
    """StagingOptions.clock for tests: the real time plus an offset that `advance` moves on."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        """Move the clock on, e.g. advance(days=8)."""
        self.offset += timedelta(**delta)


@dataclass
class Staging:
    """A running staging service and a stub connected to it."""

    running: RunningStaging
    channel: grpc.aio.Channel
    stub: Any
    stopped: bool = False

    async def sweep(self) -> list[tuple[str, str]]:
        """Run one expiry sweep now; the (workspace, batch id) of the batches it purged."""
        assert self.running.expiry is not None
        return await self.running.expiry.sweep()

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            await self.channel.close()
            await self.running.stop()


Launch = Callable[..., Awaitable[Staging]]


@pytest.fixture
async def launch(settings: Settings) -> AsyncIterator[Launch]:
    """Starts staging on a free port with the given StagingOptions fields (e.g.
    `clock=MovableClock()`); stops it afterwards."""
    started: list[Staging] = []

    async def _launch(**options: Any) -> Staging:
        running = await start(settings, "127.0.0.1:0", StagingOptions(**options))
        channel = aio_channel(f"127.0.0.1:{running.port}")
        staging = Staging(running, channel, staging_stub(channel))
        started.append(staging)
        return staging

    yield _launch
    for staging in started:
        await staging.stop()
