"""SQL of the scheduler's own schema: workflows, jobs, stages and tasks."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from sluice.errors import AlreadyExists, NotFound


@dataclass(frozen=True)
class StageProgress:
    name: str
    state: str
    machine_type: str
    output_batch_id: str
    items_total: int
    tasks_total: int
    tasks_done: int
    items_done: int
    items_failed: int


@dataclass(frozen=True)
class NewTask:
    task_id: str
    stage: str
    item_count: int
    payload: bytes


@dataclass(frozen=True)
class RecordedResult:
    """What a task result changed: the task's job, and whether this result was the first for it."""

    workspace: str
    job_id: str
    stage: str
    first: bool


class Repository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # Workflows

    async def save_workflow(self, workspace: str, workflow_id: str, definition: str) -> asyncpg.Record:
        """Store a definition as a new version, unless it equals the latest version."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))", workspace, workflow_id
            )
            latest = await conn.fetchrow(
                "SELECT * FROM workflows WHERE workspace=$1 AND workflow_id=$2 ORDER BY version DESC LIMIT 1",
                workspace,
                workflow_id,
            )
            if latest is not None and latest["definition"] == definition:
                return latest
            version = 1 if latest is None else latest["version"] + 1
            row = await conn.fetchrow(
                "INSERT INTO workflows (workspace, workflow_id, version, definition) "
                "VALUES ($1, $2, $3, $4) RETURNING *",
                workspace,
                workflow_id,
                version,
                definition,
            )
            assert row is not None
            return row

    async def workflow(self, workspace: str, workflow_id: str, version: int = 0) -> asyncpg.Record:
        if version:
            row = await self.pool.fetchrow(
                "SELECT * FROM workflows WHERE workspace=$1 AND workflow_id=$2 AND version=$3",
                workspace,
                workflow_id,
                version,
            )
        else:
            row = await self.pool.fetchrow(
                "SELECT * FROM workflows WHERE workspace=$1 AND workflow_id=$2 ORDER BY version DESC LIMIT 1",
                workspace,
                workflow_id,
            )
        if row is None:
            which = f" version {version}" if version else ""
            raise NotFound(f"workflow '{workflow_id}'{which} not found")
        return row

    async def latest_workflows(self, workspace: str) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                "SELECT DISTINCT ON (workflow_id) * FROM workflows WHERE workspace=$1 "
                "ORDER BY workflow_id, version DESC",
                workspace,
            )
        )

    # Jobs

    async def create_job(
        self, job: dict[str, object], stages: list[dict[str, object]], tasks: list[NewTask]
    ) -> None:
        """Insert a job with its stages and its first stage's tasks (state 'pending'), atomically."""
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                await conn.execute(
                    "INSERT INTO jobs (workspace, job_id, job_uid, workflow_id, workflow_version, "
                    "batch_id, state, current_stage, machine_type, workers_per_machine, "
                    "save_image_outputs, aggregation_format, max_failure_rate, workflow_params, "
                    "image_outputs_to_save) "
                    "VALUES ($1,$2,$3,$4,$5,$6,'queued',$7,$8,$9,$10,$11,$12,$13,$14)",
                    job["workspace"],
                    job["job_id"],
                    job["job_uid"],
                    job["workflow_id"],
                    job["workflow_version"],
                    job["batch_id"],
                    stages[0]["name"],
                    job["machine_type"],
                    job["workers_per_machine"],
                    job["save_image_outputs"],
                    job["aggregation_format"],
                    job["max_failure_rate"],
                    job["workflow_params"],
                    job["image_outputs_to_save"],
                )
            except asyncpg.UniqueViolationError:
                raise AlreadyExists(f"job '{job['job_id']}' already exists") from None
            for position, stage in enumerate(stages):
                await conn.execute(
                    "INSERT INTO stages (workspace, job_id, name, position, state, machine_type, "
                    "output_batch_id, items_total) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                    job["workspace"],
                    job["job_id"],
                    stage["name"],
                    position,
                    "running" if position == 0 else "pending",
                    stage["machine_type"],
                    stage["output_batch_id"],
                    stage["items_total"],
                )
            await self._insert_tasks(conn, str(job["workspace"]), str(job["job_id"]), tasks)

    async def add_tasks(self, workspace: str, job_id: str, tasks: list[NewTask]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self._insert_tasks(conn, workspace, job_id, tasks)

    @staticmethod
    async def _insert_tasks(
        conn: PoolConnectionProxy, workspace: str, job_id: str, tasks: list[NewTask]
    ) -> None:
        await conn.executemany(
            "INSERT INTO tasks (workspace, job_id, task_id, stage, state, item_count, payload) "
            "VALUES ($1,$2,$3,$4,'pending',$5,$6) ON CONFLICT (task_id) DO NOTHING",
            [(workspace, job_id, t.task_id, t.stage, t.item_count, t.payload) for t in tasks],
        )

    async def job(self, workspace: str, job_id: str) -> asyncpg.Record:
        row = await self.pool.fetchrow(
            "SELECT * FROM jobs WHERE workspace=$1 AND job_id=$2", workspace, job_id
        )
        if row is None:
            raise NotFound(f"job '{job_id}' not found")
        return row

    async def jobs(self, workspace: str, limit: int) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                "SELECT * FROM jobs WHERE workspace=$1 ORDER BY created_at DESC LIMIT $2",
                workspace,
                limit,
            )
        )

    async def active_jobs(self) -> list[asyncpg.Record]:
        return list(await self.pool.fetch("SELECT * FROM jobs WHERE state IN ('queued', 'running')"))

    async def stages(self, workspace: str, job_id: str) -> list[StageProgress]:
        rows = await self.pool.fetch(
            "SELECT s.name, s.state, s.machine_type, s.output_batch_id, s.items_total, "
            "count(t.task_id) AS tasks_total, "
            "count(t.task_id) FILTER (WHERE t.state IN ('done', 'failed')) AS tasks_done, "
            "coalesce(sum(t.items_done), 0)::bigint AS items_done, "
            "coalesce(sum(t.items_failed), 0)::bigint AS items_failed "
            "FROM stages s LEFT JOIN tasks t "
            "ON t.workspace=s.workspace AND t.job_id=s.job_id AND t.stage=s.name "
            "WHERE s.workspace=$1 AND s.job_id=$2 "
            "GROUP BY s.name, s.state, s.machine_type, s.output_batch_id, s.items_total, s.position "
            "ORDER BY s.position",
            workspace,
            job_id,
        )
        return [StageProgress(**dict(r)) for r in rows]

    async def set_job_state(
        self, workspace: str, job_id: str, state: str, *, stage: str | None = None, error: str = ""
    ) -> None:
        """Move an active job to `state`; a job that ended (completed, failed) stays as it is."""
        await self.pool.execute(
            "UPDATE jobs SET state=$3, current_stage=coalesce($4, current_stage), error=$5, "
            "updated_at=now() WHERE workspace=$1 AND job_id=$2 AND state IN ('queued', 'running')",
            workspace,
            job_id,
            state,
            stage,
            error,
        )

    async def set_stage_state(
        self, workspace: str, job_id: str, stage: str, state: str, *, was: str | None = None
    ) -> bool:
        """Set a stage's state (only if it is `was`, when given); False when nothing changed."""
        result = await self.pool.execute(
            "UPDATE stages SET state=$4 WHERE workspace=$1 AND job_id=$2 AND name=$3 "
            "AND ($5::text IS NULL OR state=$5)",
            workspace,
            job_id,
            stage,
            state,
            was,
        )
        return str(result) != "UPDATE 0"

    # Tasks

    async def pending_tasks(self, limit: int = 500) -> list[asyncpg.Record]:
        """Tasks written but not yet published (after a crash between the two, they go out again)."""
        return list(
            await self.pool.fetch(
                "SELECT t.task_id, t.payload, t.stage, t.workspace, t.job_id, j.job_uid, "
                "s.machine_type FROM tasks t "
                "JOIN jobs j ON j.workspace=t.workspace AND j.job_id=t.job_id "
                "JOIN stages s ON s.workspace=t.workspace AND s.job_id=t.job_id AND s.name=t.stage "
                "WHERE t.state='pending' AND j.state IN ('queued', 'running') "
                "ORDER BY t.task_id LIMIT $1",
                limit,
            )
        )

    async def mark_published(self, task_ids: list[str]) -> None:
        await self.pool.execute(
            "UPDATE tasks SET state='published', updated_at=now() "
            "WHERE task_id = ANY($1::text[]) AND state='pending'",
            task_ids,
        )

    async def record_result(
        self,
        task_id: str,
        *,
        ok: bool,
        items_done: int,
        items_failed: int,
        worker_id: str,
        error: str,
    ) -> RecordedResult | None:
        """Mark a task finished; None when the task is unknown."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT workspace, job_id, stage, state, item_count FROM tasks WHERE task_id=$1 FOR UPDATE",
                task_id,
            )
            if row is None:
                return None
            first = row["state"] not in ("done", "failed")
            if first:
                if not ok:
                    items_done, items_failed = row["item_count"], row["item_count"]
                await conn.execute(
                    "UPDATE tasks SET state=$2, items_done=$3, items_failed=$4, worker_id=$5, "
                    "error=$6, updated_at=now() WHERE task_id=$1",
                    task_id,
                    "done" if ok else "failed",
                    items_done,
                    items_failed,
                    worker_id,
                    error,
                )
            return RecordedResult(row["workspace"], row["job_id"], row["stage"], first)
