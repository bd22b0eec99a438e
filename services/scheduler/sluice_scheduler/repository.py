"""SQL of the scheduler's own schema: workflows, jobs and stages (tasks: task_records.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from sluice.errors import AlreadyExists, FailedPrecondition, NotFound


@dataclass(frozen=True)
class StageProgress:
    name: str
    state: str
    machine_type: str
    output_batch_id: str
    items_total: int
    tasks_total: int
    items_done: int
    items_failed: int
    waiting: int = 0
    queued: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    interrupted: int = 0

    @property
    def tasks_done(self) -> int:
        """Tasks that ended, done or failed."""
        return self.done + self.failed


@dataclass(frozen=True)
class NewTask:
    task_id: str
    stage: str
    item_count: int
    payload: bytes
    attempt: int = 1


@dataclass(frozen=True)
class HaltedJob:
    """A job an abort or the runtime cap just ended: what the workers must be told."""

    job_uid: str
    attempt: int
    stage: str


@dataclass(frozen=True)
class JobChanges:
    """What a restart may change; None keeps the job's value."""

    machine_type: str | None = None
    workers_per_machine: int | None = None
    max_runtime_s: float | None = None
    max_parallel_tasks: int | None = None
    max_failure_rate: float | None = None


# A stage row as StageProgress: the counters the tasks' triggers keep (migration 007).
STAGE_COLUMNS = (
    "name, state, machine_type, output_batch_id, items_total, tasks_total, items_done, items_failed, "
    "tasks_waiting AS waiting, tasks_queued AS queued, tasks_running AS running, tasks_done AS done, "
    "tasks_failed AS failed, tasks_interrupted AS interrupted"
)

RESTARTABLE = ("aborted", "stopped", "failed")
ENDED = ("completed", "completed_with_errors", "failed", "aborted", "stopped")
# The kind of the scheduler's own jobs that run an estimate's sample: hidden, no events.
ESTIMATE = "estimate"


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
                    "image_outputs_to_save, max_runtime_s, max_parallel_tasks, priority, "
                    "input_type, max_video_fps, video_segment_s, kind, notifications_url) "
                    "VALUES ($1,$2,$3,$4,$5,$6,'queued',$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,"
                    "$18,$19,$20,$21,$22)",
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
                    job["max_runtime_s"],
                    job["max_parallel_tasks"],
                    job["priority"],
                    job.get("input_type", "images"),
                    job.get("max_video_fps", 0.0),
                    job.get("video_segment_s", 0.0),
                    job.get("kind", "job"),
                    job.get("notifications_url", ""),
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
                    "pending",  # the first stage runs once its first task is dispatched
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
        # One statement, so the stage counters' trigger runs once however many tasks there are.
        await conn.execute(
            "INSERT INTO tasks (workspace, job_id, task_id, stage, state, item_count, payload, attempt) "
            "SELECT $1, $2, u.task_id, u.stage, 'pending', u.item_count, u.payload, u.attempt "
            "FROM unnest($3::text[], $4::text[], $5::bigint[], $6::bytea[], $7::int[]) "
            "AS u(task_id, stage, item_count, payload, attempt) ON CONFLICT (task_id) DO NOTHING",
            workspace,
            job_id,
            [t.task_id for t in tasks],
            [t.stage for t in tasks],
            [t.item_count for t in tasks],
            [t.payload for t in tasks],
            [t.attempt for t in tasks],
        )

    async def job(self, workspace: str, job_id: str) -> asyncpg.Record:
        row = await self.pool.fetchrow(
            "SELECT * FROM jobs WHERE workspace=$1 AND job_id=$2", workspace, job_id
        )
        if row is None:
            raise NotFound(f"job '{job_id}' not found")
        return row

    async def jobs(
        self,
        workspace: str,
        limit: int,
        states: list[str] | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> list[asyncpg.Record]:
        """Jobs newest first, only in `states` when given, after the page ending at `before`."""
        created, job_id = before if before is not None else (None, None)
        return list(
            await self.pool.fetch(
                "SELECT * FROM jobs WHERE workspace=$1 AND kind='job' "
                "AND ($3::text[] IS NULL OR state = ANY($3::text[])) "
                "AND ($4::timestamptz IS NULL OR (created_at, job_id) < ($4, $5::text)) "
                "ORDER BY created_at DESC, job_id DESC LIMIT $2",
                workspace,
                limit,
                states or None,
                created,
                job_id,
            )
        )

    async def job_by_uid(self, job_uid: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT * FROM jobs WHERE job_uid=$1", job_uid)

    async def active_jobs(self) -> list[asyncpg.Record]:
        return list(await self.pool.fetch("SELECT * FROM jobs WHERE state IN ('queued', 'running')"))

    async def stalled_jobs(self) -> list[asyncpg.Record]:
        """Active jobs (not an estimate's sample) that should have moved on: a running stage with
        every task ended, or an export stage not started (no task) after processing completed. One read
        of the stage counters (migration 007)."""
        return list(
            await self.pool.fetch(
                "SELECT DISTINCT j.workspace, j.job_id FROM jobs j "
                "JOIN stages s ON s.workspace=j.workspace AND s.job_id=j.job_id "
                "WHERE j.state IN ('queued', 'running') AND j.kind <> $1 AND ("
                "(s.state='running' AND s.tasks_total > 0 "
                "AND s.tasks_done + s.tasks_failed >= s.tasks_total) "
                "OR (s.state='pending' AND s.name='export' AND s.tasks_total = 0 "
                "AND EXISTS (SELECT 1 FROM stages p "
                "WHERE p.workspace=s.workspace AND p.job_id=s.job_id AND p.name='processing' "
                "AND p.state='completed'))) ORDER BY j.workspace, j.job_id",
                ESTIMATE,
            )
        )

    async def stages(self, workspace: str, job_id: str) -> list[StageProgress]:
        """The job's stages in order, with the counters their tasks keep (migration 007)."""
        rows = await self.pool.fetch(
            f"SELECT {STAGE_COLUMNS} FROM stages WHERE workspace=$1 AND job_id=$2 ORDER BY position",
            workspace,
            job_id,
        )
        return [StageProgress(**dict(r)) for r in rows]

    async def set_job_state(
        self, workspace: str, job_id: str, state: str, *, stage: str | None = None, error: str = ""
    ) -> None:
        """Move an active job to `state`; a job that ended stays as it is."""
        await self.pool.execute(
            "UPDATE jobs SET state=$3, current_stage=coalesce($4, current_stage), error=$5, "
            "updated_at=now(), "
            "started_at=CASE WHEN $3='running' THEN coalesce(started_at, now()) ELSE started_at END, "
            "ended_at=CASE WHEN $3 IN ('queued', 'running') THEN NULL ELSE now() END "
            "WHERE workspace=$1 AND job_id=$2 AND state IN ('queued', 'running')",
            workspace,
            job_id,
            state,
            stage,
            error,
        )

    async def start_stage(self, workspace: str, job_id: str, stage: str, tasks: list[NewTask]) -> bool:
        """Write a pending stage's tasks, mark it running and make it the job's current stage, in
        one transaction (a crash between writing the tasks and starting the stage once left it
        pending with its task done, which nothing advanced). False, writing nothing, when the
        stage was not pending (started already) or the job ended."""
        async with self.pool.acquire() as conn, conn.transaction():
            started = await conn.execute(
                "UPDATE stages s SET state='running' FROM jobs j "
                "WHERE s.workspace=$1 AND s.job_id=$2 AND s.name=$3 AND s.state='pending' "
                "AND j.workspace=s.workspace AND j.job_id=s.job_id AND j.state IN ('queued', 'running')",
                workspace,
                job_id,
                stage,
            )
            if str(started) == "UPDATE 0":
                return False
            await self._insert_tasks(conn, workspace, job_id, tasks)
            await conn.execute(
                "UPDATE jobs SET state='running', current_stage=$3, updated_at=now(), "
                "started_at=coalesce(started_at, now()) WHERE workspace=$1 AND job_id=$2",
                workspace,
                job_id,
                stage,
            )
        return True

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

    async def machine_seconds(self, workspace: str, job_id: str) -> float:
        """Machine time the job's tasks used so far, over all attempts (slots summed): from the
        stage counters (migration 008), not a sum over every task."""
        value = await self.pool.fetchval(
            "SELECT coalesce(sum(machine_s), 0) FROM stages WHERE workspace=$1 AND job_id=$2",
            workspace,
            job_id,
        )
        return float(value or 0.0)

    async def jobs_over_cap(self) -> list[asyncpg.Record]:
        """Active jobs whose machine time reached their runtime cap (their stage rows' time)."""
        return list(
            await self.pool.fetch(
                "SELECT j.workspace, j.job_id, j.max_runtime_s, sum(s.machine_s) AS used "
                "FROM jobs j JOIN stages s ON s.workspace=j.workspace AND s.job_id=j.job_id "
                "WHERE j.state IN ('queued', 'running') AND j.max_runtime_s > 0 "
                "GROUP BY j.workspace, j.job_id, j.max_runtime_s "
                "HAVING sum(s.machine_s) >= j.max_runtime_s"
            )
        )

    async def recently_halted(self, within_s: float) -> list[asyncpg.Record]:
        """Jobs aborted or stopped in the last `within_s` seconds (their workers are told again)."""
        return list(
            await self.pool.fetch(
                "SELECT workspace, job_id, job_uid, attempt FROM jobs "
                "WHERE halted_at > now() - make_interval(secs => $1) AND state IN ('aborted', 'stopped')",
                within_s,
            )
        )

    async def halt_job(self, workspace: str, job_id: str, state: str, reason: str) -> HaltedJob | None:
        """End an active job as aborted or stopped; its unfinished tasks become interrupted.

        None when the job was not active (it ended already).
        """
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE jobs SET state=$3, error=$4, updated_at=now(), ended_at=now(), halted_at=now() "
                "WHERE workspace=$1 AND job_id=$2 AND state IN ('queued', 'running') "
                "RETURNING job_uid, attempt, current_stage",
                workspace,
                job_id,
                state,
                reason,
            )
            if row is None:
                return None
            # Locked in task id order first, as a group of results locks them (record_results),
            # so a halt and another replica's group wait for each other instead of deadlocking.
            await conn.execute(
                "SELECT 1 FROM tasks WHERE workspace=$1 AND job_id=$2 "
                "AND state IN ('pending', 'queued', 'running') ORDER BY task_id FOR UPDATE",
                workspace,
                job_id,
            )
            await conn.execute(
                "UPDATE tasks SET state='interrupted', updated_at=now() "
                "WHERE workspace=$1 AND job_id=$2 AND state IN ('pending', 'queued', 'running')",
                workspace,
                job_id,
            )
            await conn.execute(
                "UPDATE stages SET state=$4 WHERE workspace=$1 AND job_id=$2 AND name=$3 "
                "AND state IN ('pending', 'running')",
                workspace,
                job_id,
                row["current_stage"],
                state,
            )
            return HaltedJob(row["job_uid"], row["attempt"], row["current_stage"])

    async def restart_job(
        self, workspace: str, job_id: str, changes: JobChanges, rewrite: Callable[[bytes, int, str], bytes]
    ) -> int:
        """Make an aborted, stopped or failed job active again as its next attempt.

        Tasks that did not finish (and failed ones) go back to pending, their payloads rewritten
        by `rewrite(payload, attempt, machine type)`; done tasks are kept. Returns the attempt.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            job = await conn.fetchrow(
                "SELECT * FROM jobs WHERE workspace=$1 AND job_id=$2 FOR UPDATE", workspace, job_id
            )
            if job is None:
                raise NotFound(f"job '{job_id}' not found")
            if job["state"] not in RESTARTABLE:
                raise FailedPrecondition(not_restartable(job_id, job["state"]))
            attempt = job["attempt"] + 1
            machine = changes.machine_type or job["machine_type"]
            await conn.execute(
                "UPDATE jobs SET state='queued', attempt=$3, error='', ended_at=NULL, halted_at=NULL, "
                "updated_at=now(), machine_type=$4, workers_per_machine=$5, max_runtime_s=$6, "
                "max_parallel_tasks=$7, max_failure_rate=$8 WHERE workspace=$1 AND job_id=$2",
                workspace,
                job_id,
                attempt,
                machine,
                _keep(changes.workers_per_machine, job["workers_per_machine"]),
                _keep(changes.max_runtime_s, job["max_runtime_s"]),
                _keep(changes.max_parallel_tasks, job["max_parallel_tasks"]),
                _keep(changes.max_failure_rate, job["max_failure_rate"]),
            )
            await conn.execute(
                "UPDATE stages SET machine_type=$3 WHERE workspace=$1 AND job_id=$2 AND position=0",
                workspace,
                job_id,
                machine,
            )
            rerun = await conn.fetch(
                "SELECT task_id, stage, payload FROM tasks WHERE workspace=$1 AND job_id=$2 "
                "AND state NOT IN ('done') ORDER BY task_id",
                workspace,
                job_id,
            )
            # One statement: the stage counters' trigger runs once for all of them.
            await conn.execute(
                "UPDATE tasks t SET state='pending', items_done=0, items_failed=0, error='', "
                "attempt=$2, publications=0, deliveries=0, machine_s=t.machine_s + t.open_s, open_s=0, "
                "cpu_s = t.cpu_s + CASE WHEN t.open_machine = 'gpu' THEN 0 ELSE t.open_s END, "
                "gpu_s = t.gpu_s + CASE WHEN t.open_machine = 'gpu' THEN t.open_s ELSE 0 END, "
                "open_delivery='', payload=u.payload, updated_at=now() "
                "FROM unnest($1::text[], $3::bytea[]) AS u(task_id, payload) WHERE t.task_id = u.task_id",
                [r["task_id"] for r in rerun],
                attempt,
                [rewrite(bytes(r["payload"]), attempt, machine) for r in rerun],
            )
            # The stage the job ended in runs again: pending until a task of it is dispatched,
            # running at once when it has nothing to rerun (it then completes or fails anew).
            stage = job["current_stage"]
            has_work = any(r["stage"] == stage for r in rerun)
            await conn.execute(
                "UPDATE stages SET state=$4 WHERE workspace=$1 AND job_id=$2 AND name=$3",
                workspace,
                job_id,
                stage,
                "pending" if has_work else "running",
            )
            if not has_work:
                await conn.execute(
                    "UPDATE jobs SET state='running' WHERE workspace=$1 AND job_id=$2", workspace, job_id
                )
            return int(attempt)


def not_restartable(job_id: str, state: str) -> str:
    """Why a job in `state` cannot be restarted, in one line."""
    said = state.replace("_", " ")
    return f"job '{job_id}' is {said}: only an aborted, stopped or failed job can be restarted"


def _keep(value: Any, current: Any) -> Any:
    return current if value is None else value
