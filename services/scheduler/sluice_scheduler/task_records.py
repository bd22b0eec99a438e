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

from dataclasses import dataclass

import asyncpg

from sluice.v1 import common_pb2, tasks_pb2

IN_FLIGHT = ("queued", "running")


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


@dataclass(frozen=True)
class RecordedProgress:
    workspace: str
    job_id: str
    stage: str
    started: bool
    """The report is the first of a delivery (the task started, or started again elsewhere)."""
    deliveries: int


@dataclass(frozen=True)
class RecordedResult:
    """What a task result changed: the task's job, and whether this result finished the task."""

    workspace: str
    job_id: str
    stage: str
    first: bool
    state: str


def delivery_key(worker_id: str, delivery: int) -> str:
    return f"{worker_id}/{delivery}"


def machine_name(machine_type: common_pb2.MachineType) -> str:
    """The machine type a slot's time is charged to: gpu, or cpu (export slots included)."""
    return "gpu" if machine_type == common_pb2.MACHINE_TYPE_GPU else "cpu"


def _by_machine(seconds: float, machine: str) -> tuple[float, float]:
    """(cpu seconds, gpu seconds) of `seconds` on `machine`."""
    return (0.0, seconds) if machine == "gpu" else (seconds, 0.0)


class TaskRecords:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # Dispatching

    async def in_flight(self, kind: str) -> dict[tuple[str, str], int]:
        """Tasks of machine type `kind` queued or running, per (workspace, job id)."""
        rows = await self.pool.fetch(
            "SELECT t.workspace, t.job_id, count(*) AS n FROM tasks t "
            "JOIN stages s ON s.workspace=t.workspace AND s.job_id=t.job_id AND s.name=t.stage "
            "WHERE t.state IN ('queued', 'running') AND s.machine_type=$1 "
            "GROUP BY t.workspace, t.job_id",
            kind,
        )
        return {(r["workspace"], r["job_id"]): int(r["n"]) for r in rows}

    async def candidates(self, kind: str) -> list[Candidate]:
        """Active jobs with pending tasks of machine type `kind`: highest priority first, then
        the one served longest ago (round-robin), then the oldest."""
        rows = await self.pool.fetch(
            "SELECT j.workspace, j.job_id, j.job_uid, j.state, j.priority, j.max_parallel_tasks, "
            "j.workers_per_machine, count(*) AS pending FROM tasks t "
            "JOIN jobs j ON j.workspace=t.workspace AND j.job_id=t.job_id "
            "JOIN stages s ON s.workspace=t.workspace AND s.job_id=t.job_id AND s.name=t.stage "
            "WHERE t.state='pending' AND j.state IN ('queued', 'running') AND s.machine_type=$1 "
            "GROUP BY j.workspace, j.job_id, j.job_uid, j.state, j.priority, j.max_parallel_tasks, "
            "j.workers_per_machine, j.last_dispatch_at, j.created_at "
            "ORDER BY j.priority DESC, j.last_dispatch_at ASC NULLS FIRST, j.created_at, j.job_id",
            kind,
        )
        return [Candidate(**{k: r[k] for k in Candidate.__dataclass_fields__}) for r in rows]

    async def backlog(self) -> dict[str, int]:
        """Tasks of active jobs waiting for a slot, queued or running, per machine type."""
        rows = await self.pool.fetch(
            "SELECT s.machine_type, count(*) AS n FROM tasks t "
            "JOIN jobs j ON j.workspace=t.workspace AND j.job_id=t.job_id "
            "JOIN stages s ON s.workspace=t.workspace AND s.job_id=t.job_id AND s.name=t.stage "
            "WHERE t.state IN ('pending', 'queued', 'running') AND j.state IN ('queued', 'running') "
            "GROUP BY s.machine_type"
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

    async def record_result(self, result: tasks_pb2.TaskResult) -> RecordedResult | None:
        """Record a finished (or stopped) delivery of a task; None when the task is unknown.

        A result seen twice changes nothing the second time. An ok result finishes the task
        whatever attempt it came from (its output is whole); a failure or a stop counts only for
        the current attempt. A stop of a task its job still wants sends it back to pending.
        """
        key = delivery_key(result.worker_id, result.delivery)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT workspace, job_id, stage, state, item_count, attempt, open_delivery, open_s, "
                "open_machine FROM tasks WHERE task_id=$1 FOR UPDATE",
                result.task_id,
            )
            if row is None:
                return None
            closed = row["open_delivery"] == f"closed:{key}"
            if not closed:
                other_open = row["open_delivery"] not in ("", key) and not row["open_delivery"].startswith(
                    "closed:"
                )
                carried = row["open_s"] if other_open else 0.0
                duration = max(result.duration_s, 0.0)
                carried_cpu, carried_gpu = _by_machine(carried, row["open_machine"])
                cpu, gpu = _by_machine(duration, machine_name(result.machine_type))
                await conn.execute(
                    "UPDATE tasks SET machine_s = machine_s + $2 + $3, open_s = 0, open_delivery = $4, "
                    "deliveries = greatest(deliveries, $5), cpu_s = cpu_s + $6, gpu_s = gpu_s + $7 "
                    "WHERE task_id=$1",
                    result.task_id,
                    carried,
                    duration,
                    f"closed:{key}",
                    result.delivery,
                    carried_cpu + cpu,
                    carried_gpu + gpu,
                )
            state = row["state"]
            current = (result.attempt or 1) == row["attempt"]
            new_state = _next_state(state, result, current)
            if new_state is None:
                if not closed and result.stopped and current and state == "interrupted":
                    await conn.execute(
                        "UPDATE tasks SET items_done=$2, items_failed=$3 WHERE task_id=$1",
                        result.task_id,
                        result.items_done,
                        result.items_failed,
                    )
                return RecordedResult(row["workspace"], row["job_id"], row["stage"], False, state)
            items_done, items_failed = result.items_done, result.items_failed
            if new_state == "failed":
                items_done = items_failed = row["item_count"]
            if new_state == "pending":
                items_done = items_failed = 0
            await conn.execute(
                "UPDATE tasks SET state=$2, items_done=$3, items_failed=$4, worker_id=$5, error=$6, "
                "updated_at=now() WHERE task_id=$1",
                result.task_id,
                new_state,
                items_done,
                items_failed,
                result.worker_id,
                result.error,
            )
            finished = new_state in ("done", "failed")
            return RecordedResult(row["workspace"], row["job_id"], row["stage"], finished, new_state)

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


def _next_state(state: str, result: tasks_pb2.TaskResult, current: bool) -> str | None:
    """The task's state after `result`; None when the result changes nothing."""
    if state in ("done", "failed"):
        return None
    if result.ok and not result.stopped:
        return "done"
    if not current:
        return None
    if result.stopped:
        return None if state == "interrupted" else "pending"
    return "failed"
