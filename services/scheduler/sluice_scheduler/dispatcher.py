"""Dispatching: publish a job's tasks only as slots free up, sharing the slots between jobs.

The work queue holds at most as many tasks of a machine type as the live workers of that type
have slots, so a job submitted behind a large one waits for one task to finish, not for the
large job's whole backlog. Free slots go to the jobs of the highest priority first and, among
equals, one task at a time to each job in turn (the job served longest ago first). A job never
has more tasks in flight (queued or running) than its --max-parallel-tasks, nor more than
--workers-per-machine times the number of live workers of its type.

Short tasks queue ahead: while every job of a type that waits for a slot or holds one runs
tasks expected to take under QUEUE_AHEAD_UNDER_S, the queue may hold one more task per slot. A
slot that ends such a task then takes the next one from the queue at once instead of waiting for
the result's round trip through the scheduler (about a quarter of a near-free model's time). A
job that does not qualify (longer tasks, or none ended yet) turns this off: while it waits,
until it has its slots (the queued short tasks drain within a second, and it is served as
before), and while it holds a slot, so that no task waits in the queue behind a long one. Abort
purges queued tasks, so none of them runs after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.js import JetStreamContext

from sluice.messaging import task_subject
from sluice_scheduler.task_records import Candidate, TaskRecords
from sluice_scheduler.workers_seen import WorkersSeen

log = logging.getLogger(__name__)
KINDS = ("cpu", "gpu", "export")
QUEUE_AHEAD_UNDER_S = 1.0
"""Jobs whose tasks are expected to end within this many seconds may queue one more per slot."""


@dataclass(frozen=True)
class Dispatched:
    workspace: str
    job_id: str
    was_queued: bool
    count: int


def job_limit(candidate: Candidate, workers: int) -> int | None:
    """The most tasks of the job in flight at once; None: no limit but the slots."""
    limits = []
    if candidate.max_parallel_tasks > 0:
        limits.append(candidate.max_parallel_tasks)
    if candidate.workers_per_machine > 0:
        limits.append(candidate.workers_per_machine * max(workers, 1))
    return min(limits) if limits else None


def queue_room(slots: int, in_flight: int, task_seconds: list[float | None]) -> int:
    """How many more tasks the queue of one machine type takes: the free slots, and one more
    per slot while every job waiting or in flight (their expected task seconds, `task_seconds`)
    runs short tasks (see the module's docstring)."""
    short = all(t is not None and t < QUEUE_AHEAD_UNDER_S for t in task_seconds)
    return (2 * slots if short and task_seconds else slots) - in_flight


def share(
    free: int, candidates: list[Candidate], in_flight: dict[tuple[str, str], int], workers: int
) -> dict[tuple[str, str], int]:
    """How many tasks each job gets of `free` slots: by priority, then round-robin one by one."""
    granted: dict[tuple[str, str], int] = {}
    for priority in sorted({c.priority for c in candidates}, reverse=True):
        group = [c for c in candidates if c.priority == priority]
        while free > 0:
            progressed = False
            for c in group:
                key = (c.workspace, c.job_id)
                given = granted.get(key, 0)
                limit = job_limit(c, workers)
                if given >= c.pending or (limit is not None and in_flight.get(key, 0) + given >= limit):
                    continue
                granted[key] = given + 1
                free -= 1
                progressed = True
                if free == 0:
                    break
            if not progressed:
                break
    return granted


class Dispatcher:
    def __init__(self, tasks: TaskRecords, js: JetStreamContext, workers: WorkersSeen) -> None:
        self.tasks = tasks
        self.js = js
        self.workers = workers
        self.lock = asyncio.Lock()
        """Held while publishing; halting a job holds it too, so no task of it slips out after."""

    async def dispatch(
        self, on_first: Callable[[str, str], Awaitable[None]] | None = None
    ) -> list[Dispatched]:
        """Publish as many pending tasks as there are free slots; `on_first(workspace, job_id)`
        is awaited for each queued job that got its first task."""
        sent: list[Dispatched] = []
        async with self.lock:
            for kind in KINDS:
                sent.extend(await self._dispatch_kind(kind))
        if on_first is not None:
            for item in sent:
                if item.was_queued:
                    await on_first(item.workspace, item.job_id)
        return sent

    async def _dispatch_kind(self, kind: str) -> list[Dispatched]:
        slots = self.workers.slots(kind)
        if slots == 0:
            return []
        in_flight = await self.tasks.in_flight(kind)
        busy = sum(in_flight.counts.values())
        if busy >= 2 * slots:
            return []
        candidates = await self.tasks.candidates(kind)
        if not candidates:
            return []
        expected = {**in_flight.task_s, **{(c.workspace, c.job_id): c.task_s for c in candidates}}
        free = queue_room(slots, busy, list(expected.values()))
        if free <= 0:
            return []
        granted = share(free, candidates, in_flight.counts, self.workers.alive(kind))
        by_key = {(c.workspace, c.job_id): c for c in candidates}
        sent = []
        for key, count in granted.items():
            candidate = by_key[key]
            rows = await self.tasks.take_pending(candidate.workspace, candidate.job_id, count)
            # Published together (one connection keeps their order), each acknowledged.
            await asyncio.gather(
                *(
                    self.js.publish(
                        task_subject(kind, candidate.job_uid),
                        bytes(row["payload"]),
                        headers={
                            "Nats-Msg-Id": f"{row['task_id']}.a{row['attempt']}.p{row['publications'] + 1}"
                        },
                    )
                    for row in rows
                )
            )
            if rows:
                await self.tasks.mark_queued(
                    candidate.workspace, candidate.job_id, [r["task_id"] for r in rows]
                )
                sent.append(
                    Dispatched(candidate.workspace, candidate.job_id, candidate.state == "queued", len(rows))
                )
        return sent
