"""A batch's events: published on the events stream and POSTed to its webhook.

`BatchEvents.publish` is how staging announces a batch's change (created, ingested, expired):
when the batch has a notifications URL, the event is first written to the outbox
(`staging.webhook_outbox`, in order per batch), then published. `run` delivers the outbox
(sluice.webhooks); each attempt is kept on its outbox row (attempts, last result, delivered or
given up) and is a line of the service log, naming the URL's host only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from nats.js import JetStreamContext

from sluice import webhooks, workspaces
from sluice.v1 import events_pb2
from sluice_staging import events

log = logging.getLogger(__name__)

OUTBOX = "staging.webhook_outbox"  # migration 005


class BatchEvents:
    def __init__(self, pool: asyncpg.Pool, policy: webhooks.DeliveryPolicy) -> None:
        self._pool = pool
        self.outbox = webhooks.OutboxTable(pool, OUTBOX, "batch_id")
        self.deliverer = webhooks.Deliverer(
            self.outbox, self._secret, policy, self._record, "staging-webhooks"
        )

    async def publish(self, js: JetStreamContext, event: events_pb2.Event, kind: str) -> None:
        """Queue the event for the batch's webhook (when it has one), then publish it."""
        url = await self._pool.fetchval(
            "SELECT notifications_url FROM staging.batches WHERE workspace = $1 AND batch_id = $2",
            event.workspace,
            event.batch_id,
        )
        if url:  # written before the publish: a NATS outage loses no webhook
            await self.outbox.add(event, kind, url, event.batch_id)
            self.deliverer.wake()
        await events.publish(js, event, kind)

    async def _secret(self, workspace: str) -> str:
        return await workspaces.webhook_secret(self._pool, workspace)

    async def _record(self, attempt: webhooks.Attempt) -> None:
        row = attempt.row
        level = (
            logging.INFO
            if attempt.outcome.delivered
            else logging.ERROR
            if attempt.gave_up
            else logging.WARNING
        )
        log.log(
            level,
            "batch %s of %s: %s (%s)",
            row.subject_id,
            row.workspace,
            webhooks.attempt_line(attempt),
            webhooks.display_url(row.url),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop`; an unexpected error is logged and delivery starts again."""
        while not stop.is_set():
            try:
                await self.deliverer.run(stop)
            except Exception:
                log.exception("webhook delivery failed; restarting it")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
