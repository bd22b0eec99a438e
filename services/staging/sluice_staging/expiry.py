"""The expiry sweep: batches past their expiry that no job holds lose their bytes.

Every `expiry_sweep_s` (SLUICE_EXPIRY_SWEEP_S, 60 s by default) staging looks for batches whose
`expires_at` has passed, that are not purged yet and whose hold (`held_until`, HoldBatch) is
not running. Each is locked (SKIP LOCKED: two replicas purge different batches), its objects are
deleted from the store (every object under `<store>/<workspace>/<batch>/`, `.sluice/` files and
temporaries included), its object rows deleted, `expired_at` set and a `batch_expired` event
published, all before the transaction commits. A crash or an error anywhere rolls the marking
back, so the batch is simply purged again by the next sweep (deleting what is already gone is no
error), and the event's id derives from the batch, so a publish repeated after a lost commit is
dropped by JetStream's duplicate window.

Time comes from an injected clock (StagingOptions.clock), so tests move it instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from nats.js import JetStreamContext

from sluice import storage
from sluice.messaging import QuietFailures
from sluice.v1 import events_pb2
from sluice_staging import events
from sluice_staging.repository import BatchRow, Repository

log = logging.getLogger(__name__)

DEFAULT_SWEEP_S = 60.0
SWEEP_BATCH = 100
"""Batches looked at per query; a sweep queries again while it finds a full page."""

Clock = Callable[[], datetime]
Publish = Callable[[JetStreamContext, events_pb2.Event, str], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def expiry_event_id(batch: BatchRow) -> str:
    """The id of a batch's batch_expired event: the same on every try (a batch expires once)."""
    key = f"{batch.workspace}/{batch.batch_id}/{batch.created_at.isoformat()}"
    return f"event-expired-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


class Expiry:
    """Purges expired batches of every workspace."""

    def __init__(
        self,
        repository: Repository,
        store: storage.ObjectStore,
        js: JetStreamContext,
        clock: Clock = utc_now,
        publish: Publish | None = None,
    ) -> None:
        self._repository = repository
        self._store = store
        self._js = js
        self._clock = clock
        self._publish = publish
        """None: events.publish, the one way staging publishes events."""

    async def sweep(self) -> list[tuple[str, str]]:
        """Purge every batch due now; return the (workspace, batch id) of those purged."""
        now = self._clock()
        purged: list[tuple[str, str]] = []
        while True:
            due = await self._repository.due_for_expiry(now, SWEEP_BATCH)
            progressed = False
            for batch in due:
                try:
                    done = await self._purge(batch.workspace, batch.batch_id, now)
                except Exception as error:  # the next sweep tries it again
                    log.warning(
                        "could not purge expired batch %s of %s (next sweep retries): %s",
                        batch.batch_id,
                        batch.workspace,
                        error or type(error).__name__,
                    )
                    continue
                if done:
                    purged.append((batch.workspace, batch.batch_id))
                    progressed = True
            if len(due) < SWEEP_BATCH or not progressed:
                return purged

    async def _purge(self, workspace: str, batch_id: str, now: datetime) -> bool:
        async with self._repository.expiring(workspace, batch_id, now) as claim:
            if claim is None:  # held or renewed meanwhile, or another replica has it
                return False
            url = self._store.batch_url(workspace, batch_id)
            deleted = await asyncio.to_thread(storage.remove_folder, url)
            await claim.mark_expired(now)
            event = events.batch_expired(workspace, batch_id, event_id=expiry_event_id(claim.batch), when=now)
            await (self._publish or events.publish)(self._js, event, events.BATCH_EXPIRED)
        log.info("batch %s of %s expired: %d objects deleted", batch_id, workspace, deleted)
        return True

    async def run(self, every_s: float, stop: asyncio.Event) -> None:
        """Sweep now and then every `every_s` seconds until `stop` is set."""
        failures = QuietFailures(log, "the expiry sweep")
        while not stop.is_set():
            try:
                await self.sweep()
                failures.succeeded()
            except Exception as error:  # Postgres away: the next sweep retries
                failures.failed(error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
