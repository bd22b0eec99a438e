"""Usage: the machine time of a workspace's jobs by machine type, and what it costs in credits.

A job's usage is the sum over its tasks of the time their slots reported (task_records.py):
closed deliveries by machine type (cpu_s, gpu_s) plus the open delivery's time (open_s) on its
machine type (open_machine), so it moves while tasks run and covers every attempt. Export slots
count as cpu. Estimates (jobs of kind 'estimate', ids `estimate:<hex>`) are usage too. The sums
are kept per stage by the stage counters' triggers (migration 009), so reading a job's usage
reads its stage rows, not every task.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from sluice.config import Settings
from sluice.errors import InvalidArgument
from sluice.v1 import scheduler_pb2

MAX_JOB_ROWS = 10_000
"""GetUsage by job answers at most this many rows (one message); more asks for a narrower period."""


@dataclass(frozen=True)
class CreditRates:
    """Credits per hour of machine time (SLUICE_CREDITS_PER_CPU_HOUR / _GPU_HOUR)."""

    cpu_per_hour: float = 1.0
    gpu_per_hour: float = 4.0

    @classmethod
    def from_settings(cls, settings: Settings) -> CreditRates:
        return cls(settings.credits_per_cpu_hour, settings.credits_per_gpu_hour)

    def usage(self, cpu_seconds: float, gpu_seconds: float) -> scheduler_pb2.Usage:
        credits = cpu_seconds / 3600 * self.cpu_per_hour + gpu_seconds / 3600 * self.gpu_per_hour
        return scheduler_pb2.Usage(cpu_seconds=cpu_seconds, gpu_seconds=gpu_seconds, credits=credits)

    def per_second(self, machine: str) -> float:
        """Credits per second of machine time on `machine` (cpu or gpu)."""
        return (self.gpu_per_hour if machine == "gpu" else self.cpu_per_hour) / 3600


async def job_usage(
    pool: asyncpg.Pool, workspace: str, job_id: str, rates: CreditRates
) -> scheduler_pb2.Usage:
    """A job's machine time by machine type so far (all attempts), and its credits."""
    row = await pool.fetchrow(
        "SELECT coalesce(sum(cpu_s), 0) AS cpu, coalesce(sum(gpu_s), 0) AS gpu "
        "FROM stages WHERE workspace=$1 AND job_id=$2",
        workspace,
        job_id,
    )
    assert row is not None
    return rates.usage(float(row["cpu"]), float(row["gpu"]))


def _bound(request: scheduler_pb2.GetUsageRequest, name: str) -> datetime | None:
    if not request.HasField(name):
        return None
    value: datetime = getattr(request, name).ToDatetime(tzinfo=UTC)
    return value


async def usage_report(
    pool: asyncpg.Pool, workspace: str, request: scheduler_pb2.GetUsageRequest, rates: CreditRates
) -> scheduler_pb2.GetUsageResponse:
    """The workspace's jobs created in [since, until), one row per job (oldest first) or per UTC
    day of creation, with their total."""
    since, until = _bound(request, "since"), _bound(request, "until")
    if since is not None and until is not None and since >= until:
        raise InvalidArgument(f"the period is empty: since ({since:%Y-%m-%d %H:%M}) is not before until")
    by = request.by or scheduler_pb2.USAGE_GROUPING_JOB
    if by not in (scheduler_pb2.USAGE_GROUPING_JOB, scheduler_pb2.USAGE_GROUPING_DAY):
        raise InvalidArgument(f"unknown usage grouping {by}: by job or by day")
    key = (
        "j.job_id"
        if by == scheduler_pb2.USAGE_GROUPING_JOB
        else "to_char(j.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    )
    rows = await pool.fetch(
        f"SELECT {key} AS key, count(DISTINCT j.job_id) AS jobs, min(j.created_at) AS first, "
        "coalesce(sum(s.cpu_s), 0) AS cpu, coalesce(sum(s.gpu_s), 0) AS gpu "
        "FROM jobs j LEFT JOIN stages s ON s.workspace=j.workspace AND s.job_id=j.job_id "
        "WHERE j.workspace=$1 AND ($2::timestamptz IS NULL OR j.created_at >= $2) "
        "AND ($3::timestamptz IS NULL OR j.created_at < $3) "
        f"GROUP BY {key} ORDER BY min(j.created_at), {key} LIMIT $4",
        workspace,
        since,
        until,
        MAX_JOB_ROWS + 1,
    )
    if len(rows) > MAX_JOB_ROWS:
        raise InvalidArgument(
            f"more than {MAX_JOB_ROWS} jobs in this period: narrow it with since/until, or group by day"
        )
    response = scheduler_pb2.GetUsageResponse(workspace=workspace)
    cpu_total = gpu_total = 0.0
    for row in rows:
        cpu, gpu = float(row["cpu"]), float(row["gpu"])
        cpu_total += cpu
        gpu_total += gpu
        response.rows.append(
            scheduler_pb2.UsageRow(key=row["key"], usage=rates.usage(cpu, gpu), jobs=row["jobs"])
        )
    response.total.CopyFrom(rates.usage(cpu_total, gpu_total))
    return response
