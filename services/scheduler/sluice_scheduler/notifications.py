"""A job's events: built from the job as it is now, published, and POSTed to its webhook.

`JobEvents.emit` is the one way the coordinator announces a lifecycle change: the event carries
the job's state, attempt, machine time and its stage's items; when the job has a notifications
URL, the event is first written to the outbox (`webhook_outbox`, in order per job), then
published on the events stream. `JobWebhooks` delivers the outbox and records every attempt in
the job's logs, so `fetch-logs` shows "webhook job_completed attempt 2: HTTP 500, ...".
"""

from __future__ import annotations

import asyncio
import time
import weakref

from nats.js import JetStreamContext

from sluice import webhooks, workspaces
from sluice.v1 import events_pb2
from sluice_scheduler import events
from sluice_scheduler.job_logs import ERROR, INFO, WARNING, JobLogs
from sluice_scheduler.repository import ESTIMATE, Repository

OUTBOX = "webhook_outbox"  # in the scheduler's schema (migration 006)
PROGRESS_EVERY_S = 1.0


class JobWebhooks:
    """The scheduler's outbox and its delivery loop."""

    def __init__(self, repo: Repository, logs: JobLogs, policy: webhooks.DeliveryPolicy) -> None:
        self.outbox = webhooks.OutboxTable(repo.pool, OUTBOX, "job_id")
        self._logs = logs
        self._pool = repo.pool
        self.deliverer = webhooks.Deliverer(
            self.outbox, self._secret, policy, self._record, "scheduler-webhooks"
        )

    async def _secret(self, workspace: str) -> str:
        return await workspaces.webhook_secret(self._pool, workspace)

    async def _record(self, attempt: webhooks.Attempt) -> None:
        severity = INFO if attempt.outcome.delivered else ERROR if attempt.gave_up else WARNING
        row = attempt.row
        await self._logs.add(row.workspace, row.subject_id, severity, webhooks.attempt_line(attempt))

    async def run(self, stop: asyncio.Event) -> None:
        await self.deliverer.run(stop)


class JobEvents:
    def __init__(self, repo: Repository, js: JetStreamContext, hooks: JobWebhooks) -> None:
        self._repo = repo
        self._js = js
        self._hooks = hooks
        # (workspace, job id) -> when its last progress event went out, its stage and items then
        self._progress: dict[tuple[str, str], tuple[float, str, int]] = {}
        # One event of a job at a time, so the outbox and the stream get them in the same order.
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def emit(
        self,
        workspace: str,
        job_id: str,
        event_type: events_pb2.EventType,
        *,
        stage: str = "",
        message: str = "",
    ) -> None:
        """Announce a change of the job (already written): the event carries the job's state,
        attempt and machine time now, and the items of `stage` (default: its current stage)."""
        lock = self._locks.setdefault((workspace, job_id), asyncio.Lock())
        async with lock:
            await self._emit(workspace, job_id, event_type, stage, message)

    async def _emit(
        self, workspace: str, job_id: str, event_type: events_pb2.EventType, stage: str, message: str
    ) -> None:
        job = await self._repo.job(workspace, job_id)
        if job.get("kind", "") == ESTIMATE:
            return
        if event_type == events_pb2.EVENT_TYPE_PROGRESS and job["state"] not in ("queued", "running"):
            return  # the job ended since progress() looked: its terminal event stays its last
        stage = stage or job["current_stage"]
        stages = {s.name: s for s in await self._repo.stages(workspace, job_id)}
        progress = stages.get(stage)
        event = events.job_event(
            event_type,
            workspace,
            job_id,
            state=job["state"],
            attempt=job["attempt"],
            machine_seconds=await self._repo.machine_seconds(workspace, job_id),
            stage=stage,
            message=message,
            items_done=progress.items_done if progress else 0,
            items_total=progress.items_total if progress else 0,
        )
        if event_type in events.TERMINAL_EVENTS:
            self._progress.pop((workspace, job_id), None)
        kind = events.KINDS[event_type]
        url = job["notifications_url"]
        if url:  # written before the publish: a NATS outage loses no webhook
            await self._hooks.outbox.add(event, kind, url, job_id)
            self._hooks.deliverer.wake()
        await events.publish(self._js, event, kind)

    async def progress(self, workspace: str, job_id: str) -> None:
        """A progress event when the job's items moved, at most one a second per job."""
        key = (workspace, job_id)
        last = self._progress.get(key)
        now = time.monotonic()
        if last is not None and now - last[0] < PROGRESS_EVERY_S:
            return
        # this second is taken, whatever comes of it
        self._progress[key] = (now, last[1], last[2]) if last is not None else (now, "", 0)
        job = await self._repo.job(workspace, job_id)
        if job["state"] not in ("queued", "running") or job.get("kind", "") == ESTIMATE:
            self._progress.pop(key, None)
            return
        stages = {s.name: s for s in await self._repo.stages(workspace, job_id)}
        stage = stages.get(job["current_stage"])
        before = last[2] if last is not None and last[1] == job["current_stage"] else 0
        if stage is None or stage.items_done <= before:
            return
        self._progress[key] = (now, stage.name, stage.items_done)
        await self.emit(workspace, job_id, events_pb2.EVENT_TYPE_PROGRESS, stage=stage.name)
