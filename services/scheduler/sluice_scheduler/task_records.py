"""SQL of the scheduler's tasks: dispatching, progress, results and machine time.

A task is pending (written, waiting for a slot), queued (published), running (a worker said it
started), then done or failed; an abort or the runtime cap makes an unfinished one interrupted.
Machine time is kept per task as the closed deliveries' sum (machine_s) plus the open
delivery's time as its slot last reported it (open_s, for the delivery named open_delivery).
For usage, the closed time is also kept by the machine type the slot reported (cpu_s, gpu_s; an
export slot counts as cpu) and the open delivery's machine type (open_machine), so a job
restarted on another machine type is charged for each.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from sluice.v1 import tasks_pb2
from sluice_scheduler.result_group import RecordedResult, TaskRow, apply_result, delivery_key, machine_name

IN_FLIGHT = ("queued", "running")


TASK_SECONDS = (
    "sum(s.machine_s) / nullif(sum(s.items_done + s.items_failed), 0) "
    "* sum(s.items_total) / nullif(sum(s.tasks_total), 0)"
)
"""SQL over a job's stage rows `s`: how long one of its tasks is expected to hold a slot (the
machine seconds per ended item times the items per task); NULL before any item ended."""


@dataclass(frozen=True)
class InFlight:
    """A machine type's tasks queued or running, per (workspace, job id)."""

    counts: dict[tuple[str, str], int]
    task_s: dict[tuple[str, str], float | None]
    """How long each of those jobs' tasks is expected to take (None: not known yet)."""


@dataclass(frozen=True)
class Candidate:
    """A job with tasks waiting for a slot of one machine type."""

    workspace: str
    job_id: str
    job_uid: str
    state: str
    priority: int
    max_parallel_tasks: int
    workers_per_machine: int
    pending: int
    task_s: float | None = None
    """How long one of its tasks is expected to hold a slot: the stage's machine seconds per
    ended item times its items per task; None before any item ended."""


@dataclass(frozen=True)
class RecordedProgress:
    workspace: str
    job_id: str
    stage: str
    started: bool
    """The report is the first of a delivery (the task started, or started again elsewhere)."""
    deliveries: int


@dataclass(frozen=True)
class StageCounts:
    """A stage's task counters after a group of results, for each stage the group touched."""

    workspace: str
    job_id: str
    stage: str
    state: str
    tasks_total: int
    tasks_ended: int
    """Tasks done or failed, this group's included."""

    @property
    def all_ended(self) -> bool:
        return self.tasks_total > 0 and self.tasks_ended >= self.tasks_total


@dataclass(frozen=True)
class RecordedGroup:
    results: list[RecordedResult | None]
    """What each result did, in the group's order; None for a task unknown here."""
    stages: list[StageCounts]


TASK_ROW_COLUMNS = (
    "task_id, workspace, job_id, stage, state, item_count, attempt, items_done, items_failed, "
    "worker_id, error, machine_s, cpu_s, gpu_s, open_s, open_delivery, open_machine, deliveries"
)
DEADLOCK_RETRIES = 3


class TaskRecords:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # Dispatching

    async def in_flight(self, kind: str) -> InFlight:
        """Tasks of machine type `kind` queued or running, per (workspace, job id), and how long
        each such job's tasks are expected to take: from the stage counters, so a dispatch reads
        stage rows, not every task of every job."""
        rows = await self.pool.fetch(
            f"SELECT workspace, job_id, sum(tasks_queued + tasks_running) AS n, {TASK_SECONDS} AS task_s "
            "FROM stages s WHERE machine_type=$1 AND tasks_queued + tasks_running > 0 "
            "GROUP BY workspace, job_id",
            kind,
        )
        return InFlight(
            {(r["workspace"], r["job_id"]): int(r["n"]) for r in rows},
            {(r["workspace"], r["job_id"]): r["task_s"] for r in rows},
        )

    async def candidates(self, kind: str) -> list[Candidate]:
        """Active jobs with pending tasks of machine type `kind`: highest priority first, then
        the one served longest ago (round-robin), then the oldest."""
        rows = await self.pool.fetch(
            "SELECT j.workspace, j.job_id, j.job_uid, j.state, j.priority, j.max_parallel_tasks, "
            "j.workers_per_machine, sum(s.tasks_waiting)::bigint AS pending, "
            f"{TASK_SECONDS} AS task_s FROM jobs j "
            "JOIN stages s ON s.workspace=j.workspace AND s.job_id=j.job_id "
            "WHERE j.state IN ('queued', 'running') AND s.machine_type=$1 AND s.tasks_waiting > 0 "
            "GROUP BY j.workspace, j.job_id, j.job_uid, j.state, j.priority, j.max_parallel_tasks, "
            "j.workers_per_machine, j.last_dispatch_at, j.created_at "
            "ORDER BY j.priority DESC, j.last_dispatch_at ASC NULLS FIRST, j.created_at, j.job_id",
            kind,
        )
        return [Candidate(**{k: r[k] for k in Candidate.__dataclass_fields__}) for r in rows]

    async def backlog(self) -> dict[str, int]:
        """Tasks of active jobs waiting for a slot, queued or running, per machine type."""
        rows = await self.pool.fetch(
            "SELECT s.machine_type, sum(s.tasks_waiting + s.tasks_queued + s.tasks_running)::bigint AS n "
            "FROM stages s JOIN jobs j ON j.workspace=s.workspace AND j.job_id=s.job_id "
            "WHERE j.state IN ('queued', 'running') GROUP BY s.machine_type "
            "HAVING sum(s.tasks_waiting + s.tasks_queued + s.tasks_running) > 0"
        )
        return {r["machine_type"]: int(r["n"]) for r in rows}

    async def take_pending(self, workspace: str, job_id: str, limit: int) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                "SELECT task_id, stage, payload, attempt, publications FROM tasks "
                "WHERE workspace=$1 AND job_id=$2 AND state='pending' ORDER BY task_id LIMIT $3",
                workspace,
                job_id,
                limit,
            )
        )

    async def mark_queued(self, workspace: str, job_id: str, task_ids: list[str]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE tasks SET state='queued', publications=publications + 1, updated_at=now() "
                "WHERE task_id = ANY($1::text[]) AND state='pending'",
                task_ids,
            )
            await conn.execute(
                "UPDATE jobs SET last_dispatch_at=clock_timestamp() WHERE workspace=$1 AND job_id=$2",
                workspace,
                job_id,
            )

    async def requeue_stranded(self, idle_s: float, kinds: list[str]) -> list[asyncpg.Record]:
        """Queued or running tasks of active jobs, of machine types in `kinds`, that no worker
        reported on for `idle_s` seconds (lost from the queue, or past their last delivery):
        back to pending, to be published again."""
        return list(
            await self.pool.fetch(
                "UPDATE tasks t SET state='pending', updated_at=now() FROM jobs j, stages s "
                "WHERE j.workspace=t.workspace AND j.job_id=t.job_id AND j.state IN ('queued', 'running') "
                "AND s.workspace=t.workspace AND s.job_id=t.job_id AND s.name=t.stage "
                "AND s.machine_type = ANY($2::text[]) "
                "AND t.state IN ('queued', 'running') AND t.updated_at < now() - make_interval(secs => $1) "
                "RETURNING t.workspace, t.job_id, t.task_id",
                idle_s,
                kinds,
            )
        )

    # Progress and results

    async def record_progress(self, progress: tasks_pb2.TaskProgress) -> RecordedProgress | None:
        """Note a running task's items and machine time; None when it is not this attempt's."""
        key = delivery_key(progress.worker_id, progress.delivery)
        row = await self.pool.fetchrow(
            "WITH old AS (SELECT task_id, state, open_delivery FROM tasks WHERE task_id=$1 AND attempt=$2 "
            "AND state NOT IN ('done', 'failed') FOR UPDATE) "
            "UPDATE tasks t SET "
            "state = CASE WHEN t.state IN ('pending', 'queued') THEN 'running' ELSE t.state END, "
            "items_done = CASE WHEN t.state = 'interrupted' THEN t.items_done ELSE $3 END, "
            "items_failed = CASE WHEN t.state = 'interrupted' THEN t.items_failed ELSE $4 END, "
            "worker_id = $5, "
            # Another delivery still open (its worker died): close it into machine_s.
            "machine_s = CASE WHEN t.open_delivery NOT IN ('', $6) AND t.open_delivery NOT LIKE 'closed:%' "
            "  THEN t.machine_s + t.open_s ELSE t.machine_s END, "
            "cpu_s = CASE WHEN t.open_delivery NOT IN ('', $6) AND t.open_delivery NOT LIKE 'closed:%' "
            "  AND t.open_machine <> 'gpu' THEN t.cpu_s + t.open_s ELSE t.cpu_s END, "
            "gpu_s = CASE WHEN t.open_delivery NOT IN ('', $6) AND t.open_delivery NOT LIKE 'closed:%' "
            "  AND t.open_machine = 'gpu' THEN t.gpu_s + t.open_s ELSE t.gpu_s END, "
            "open_machine = CASE WHEN t.open_delivery = 'closed:' || $6 THEN t.open_machine ELSE $9 END, "
            # A report after this delivery's result (reordered) changes no time.
            "open_s = CASE WHEN t.open_delivery = $6 THEN greatest(t.open_s, $7) "
            "  WHEN t.open_delivery = 'closed:' || $6 THEN t.open_s ELSE $7 END, "
            "open_delivery = CASE WHEN t.open_delivery = 'closed:' || $6 THEN t.open_delivery ELSE $6 END, "
            "deliveries = greatest(t.deliveries, $8), updated_at = now() "
            "FROM old WHERE t.task_id = old.task_id "
            "RETURNING t.workspace, t.job_id, t.stage, old.state AS was, "
            "old.open_delivery AS was_delivery, t.deliveries",
            progress.task_id,
            progress.attempt or 1,
            progress.items_done,
            progress.items_failed,
            progress.worker_id,
            key,
            progress.elapsed_s,
            progress.delivery,
            machine_name(progress.machine_type),
        )
        if row is None:
            return None
        new_delivery = row["was_delivery"] not in (key, f"closed:{key}")
        return RecordedProgress(
            row["workspace"],
            row["job_id"],
            row["stage"],
            new_delivery and row["was"] != "interrupted",
            row["deliveries"],
        )

    async def record_results(self, results: list[tasks_pb2.TaskResult]) -> RecordedGroup:
        """Record a group of finished (or stopped) deliveries in one transaction.

        The group's tasks are locked once (in task id order, so two groups never deadlock),
        each result is applied in order (result_group.py), and the changed rows are written in
        one statement, whose trigger moves the stage counters. Retried on a deadlock with
        another transaction (a halt locking the same tasks).
        """
        for attempt in range(DEADLOCK_RETRIES):
            try:
                return await self._record_results(results)
            except asyncpg.DeadlockDetectedError:
                if attempt == DEADLOCK_RETRIES - 1:
                    raise
        raise RuntimeError("unreachable")

    async def _record_results(self, results: list[tasks_pb2.TaskResult]) -> RecordedGroup:
        async with self.pool.acquire() as conn, conn.transaction():
            fetched = await conn.fetch(
                f"SELECT {TASK_ROW_COLUMNS} FROM tasks WHERE task_id = ANY($1::text[]) "
                "ORDER BY task_id FOR UPDATE",
                sorted({r.task_id for r in results}),
            )
            rows = {r["task_id"]: TaskRow(**dict(r)) for r in fetched}
            before = {task_id: dataclasses.replace(row) for task_id, row in rows.items()}
            recorded: list[RecordedResult | None] = []
            for result in results:
                row = rows.get(result.task_id)
                recorded.append(None if row is None else apply_result(row, result))
            changed = [row for task_id, row in rows.items() if row != before[task_id]]
            await _write_rows(conn, changed)
            return RecordedGroup(recorded, await _stage_counts(conn, recorded))

    async def fail_task(self, task_id: str, error: str) -> RecordedResult | None:
        """Mark an unfinished task failed (it ran out of deliveries without a result)."""
        row = await self.pool.fetchrow(
            "UPDATE tasks SET state='failed', items_done=item_count, items_failed=item_count, "
            "error=$2, updated_at=now() WHERE task_id=$1 AND state IN ('pending', 'queued', 'running') "
            "RETURNING workspace, job_id, stage",
            task_id,
            error,
        )
        if row is None:
            return None
        return RecordedResult(row["workspace"], row["job_id"], row["stage"], True, "failed")

    async def failed_tasks(self, workspace: str, job_id: str, stage: str) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                "SELECT task_id, payload, error FROM tasks WHERE workspace=$1 AND job_id=$2 "
                "AND stage=$3 AND state='failed' ORDER BY task_id",
                workspace,
                job_id,
                stage,
            )
        )

    async def notable(self, workspace: str, job_id: str, limit: int = 100) -> list[asyncpg.Record]:
        """The job's running, failed and interrupted tasks (what a user looks at)."""
        return list(
            await self.pool.fetch(
                "SELECT task_id, stage, state, items_done, item_count, items_failed, worker_id, "
                "deliveries, machine_s + open_s AS machine_seconds, error FROM tasks "
                "WHERE workspace=$1 AND job_id=$2 AND state IN ('running', 'failed', 'interrupted') "
                "ORDER BY (state = 'running') DESC, task_id LIMIT $3",
                workspace,
                job_id,
                limit,
            )
        )


async def _write_rows(conn: PoolConnectionProxy, rows: list[TaskRow]) -> None:
    """Write the changed task rows back, in one statement."""
    if not rows:
        return
    await conn.execute(
        "UPDATE tasks t SET state=u.state, items_done=u.items_done, items_failed=u.items_failed, "
        "worker_id=u.worker_id, error=u.error, machine_s=u.machine_s, cpu_s=u.cpu_s, gpu_s=u.gpu_s, "
        "open_s=u.open_s, open_delivery=u.open_delivery, deliveries=u.deliveries, "
        "updated_at = CASE WHEN u.touched THEN now() ELSE t.updated_at END "
        "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], "
        "$7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::text[], $12::int[], $13::bool[]) "
        "AS u(task_id, state, items_done, items_failed, worker_id, error, machine_s, cpu_s, gpu_s, "
        "open_s, open_delivery, deliveries, touched) WHERE t.task_id = u.task_id",
        [r.task_id for r in rows],
        [r.state for r in rows],
        [r.items_done for r in rows],
        [r.items_failed for r in rows],
        [r.worker_id for r in rows],
        [r.error for r in rows],
        [r.machine_s for r in rows],
        [r.cpu_s for r in rows],
        [r.gpu_s for r in rows],
        [r.open_s for r in rows],
        [r.open_delivery for r in rows],
        [r.deliveries for r in rows],
        [r.touched for r in rows],
    )


async def _stage_counts(
    conn: PoolConnectionProxy, recorded: list[RecordedResult | None]
) -> list[StageCounts]:
    """The counters of the stages of every task this group touched (read in its transaction),
    whether or not a result finished it here: a group handled again after a failure past its
    commit finds its tasks closed already, and must still advance their jobs."""
    keys = sorted({(r.workspace, r.job_id, r.stage) for r in recorded if r is not None})
    if not keys:
        return []
    rows = await conn.fetch(
        "SELECT s.workspace, s.job_id, s.name, s.state, s.tasks_total, "
        "s.tasks_done + s.tasks_failed AS ended "
        "FROM stages s JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(workspace, job_id, name) "
        "ON s.workspace = k.workspace AND s.job_id = k.job_id AND s.name = k.name",
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    return [
        StageCounts(
            r["workspace"],
            r["job_id"],
            r["name"],
            r["state"],
            int(r["tasks_total"]),
            int(r["ended"]),
        )
        for r in rows
    ]
