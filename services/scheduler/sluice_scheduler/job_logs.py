"""A job's log records in the scheduler's schema: what the scheduler and the workers said."""

from __future__ import annotations

import contextlib
import logging

import asyncpg

log = logging.getLogger(__name__)

INFO, WARNING, ERROR = 1, 2, 3
SCHEDULER = "scheduler"
_LEVELS = {INFO: logging.INFO, WARNING: logging.WARNING, ERROR: logging.ERROR}


class JobLogs:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def add(
        self,
        workspace: str,
        job_id: str,
        severity: int,
        message: str,
        *,
        source: str = SCHEDULER,
        task_id: str = "",
        time: float | None = None,
    ) -> None:
        """Keep one record (and log it in this process too); a job that is gone keeps nothing."""
        severity = severity if severity in _LEVELS else INFO
        message = " ".join(message.split())  # a record is one line, whatever a worker sent
        log.log(_LEVELS[severity], "job %s%s: %s", job_id, f" task {task_id}" if task_id else "", message)
        with contextlib.suppress(asyncpg.ForeignKeyViolationError):
            await self.pool.execute(
                "INSERT INTO logs (workspace, job_id, time, severity, source, task_id, message) "
                "VALUES ($1, $2, coalesce(to_timestamp($3), now()), $4, $5, $6, $7)",
                workspace,
                job_id,
                time,
                severity,
                source,
                task_id,
                message,
            )

    async def page(
        self, workspace: str, job_id: str, min_severity: int, limit: int, after_id: int
    ) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                "SELECT id, time, severity, source, task_id, message FROM logs "
                "WHERE workspace=$1 AND job_id=$2 AND severity >= $3 AND id > $4 ORDER BY id LIMIT $5",
                workspace,
                job_id,
                min_severity,
                after_id,
                limit,
            )
        )
