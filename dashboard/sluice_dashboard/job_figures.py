"""The figures a person reads off a job (progress, throughput, ETA, credits), as pure functions of the
scheduler's messages, so the jobs table and the job page say the same thing and tests can check them
without a page.

Items done / total come from the job's current stage (or its last stage with items): that is what
moves now. Throughput and ETA come from the processing stage (the first one): its items are the
images or frames the workers process one by one, while the export stage's items all land at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from sluice.cli.output import when
from sluice.job_states import ENDED, JOB_STATES, SUCCEEDED
from sluice.v1 import common_pb2, events_pb2, scheduler_pb2

ACTIVE = {scheduler_pb2.JOB_STATE_QUEUED, scheduler_pb2.JOB_STATE_RUNNING}
# What RestartJob accepts (the scheduler refuses the rest with its reason).
RESTARTABLE = {
    scheduler_pb2.JOB_STATE_ABORTED,
    scheduler_pb2.JOB_STATE_STOPPED,
    scheduler_pb2.JOB_STATE_FAILED,
}
MACHINE_NAMES = {common_pb2.MACHINE_TYPE_CPU: "cpu", common_pb2.MACHINE_TYPE_GPU: "gpu"}


@dataclass(frozen=True)
class JobFigures:
    """One job as the jobs table and the job page show it."""

    job_id: str
    state: str
    stage: str
    items_done: int
    items_total: int
    items_failed: int
    fraction: float
    throughput: float | None  # items per second, None before the job started
    eta_s: float | None  # None when unknown or the job is not running
    machine: str
    machine_seconds: float
    credits: float
    created: str

    @property
    def items(self) -> str:
        return f"{self.items_done} / {self.items_total}"


@dataclass(frozen=True)
class ProgressPoint:
    """A stage's items done at one moment, from a progress event."""

    time: datetime
    stage: str
    items_done: int
    items_total: int
    attempt: int


def state_label(job: scheduler_pb2.Job) -> str:
    return JOB_STATES.get(job.state, "unknown")


def is_active(job: scheduler_pb2.Job) -> bool:
    return job.state in ACTIVE


def is_ended(job: scheduler_pb2.Job) -> bool:
    return job.state in ENDED


def items_stage(job: scheduler_pb2.Job) -> scheduler_pb2.Stage | None:
    """The current stage, else the last stage that has items."""
    current = next((s for s in job.stages if s.name == job.current_stage), None)
    if current is not None and current.items_total:
        return current
    with_items = [s for s in job.stages if s.items_total]
    return with_items[-1] if with_items else current


def processing_stage(job: scheduler_pb2.Job) -> scheduler_pb2.Stage | None:
    return job.stages[0] if job.stages else None


def _datetime(ts: Timestamp) -> datetime | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def elapsed_s(job: scheduler_pb2.Job, now: datetime | None = None) -> float | None:
    """Seconds from started_at to ended_at (or now while it runs); None before it started."""
    started = _datetime(job.started_at)
    if started is None:
        return None
    ended = _datetime(job.ended_at) if is_ended(job) else None
    end = ended or now or datetime.now(UTC)
    return max(0.0, (end - started).total_seconds())


def throughput(job: scheduler_pb2.Job, now: datetime | None = None) -> float | None:
    """The processing stage's items per second since the job started."""
    stage, elapsed = processing_stage(job), elapsed_s(job, now)
    if stage is None or elapsed is None:
        return None
    return stage.items_done / elapsed if elapsed > 0 else 0.0


def eta_s(job: scheduler_pb2.Job, rate: float | None) -> float | None:
    """Seconds until the processing stage is done at `rate`; None when not running or unknown."""
    stage = processing_stage(job)
    if job.state != scheduler_pb2.JOB_STATE_RUNNING or stage is None or not rate:
        return None
    return max(0, stage.items_total - stage.items_done) / rate


def figures(job: scheduler_pb2.Job, now: datetime | None = None) -> JobFigures:
    stage = items_stage(job)
    done, total = (stage.items_done, stage.items_total) if stage is not None else (0, 0)
    processing = processing_stage(job)
    rate = throughput(job, now)
    return JobFigures(
        job_id=job.job_id,
        state=state_label(job),
        stage=stage.name if stage is not None else "",
        items_done=done,
        items_total=total,
        items_failed=processing.items_failed if processing is not None else 0,
        fraction=min(1.0, done / total) if total else (1.0 if job.state in SUCCEEDED else 0.0),
        throughput=rate,
        eta_s=eta_s(job, rate),
        machine=MACHINE_NAMES.get(job.machine_type, "-"),
        machine_seconds=job.machine_seconds,
        credits=job.usage.credits,
        created=when(job.created_at),
    )


def duration(seconds: float | None) -> str:
    """'-', '42 s', '3 min 05 s' or '2 h 07 min'."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def rate_text(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2f} items/s"


def progress_history(events: Iterable[events_pb2.Event]) -> list[ProgressPoint]:
    """Items done over time, one point per event that carries a stage's items, oldest first."""
    points = [
        ProgressPoint(
            time=e.time.ToDatetime(tzinfo=UTC),
            stage=e.stage,
            items_done=e.items_done,
            items_total=e.items_total,
            attempt=e.attempt,
        )
        for e in events
        if e.stage and e.items_total and e.time.seconds
    ]
    return sorted(points, key=lambda p: p.time)


def recent_throughput(points: list[ProgressPoint], stage: str, window: int = 10) -> float | None:
    """`stage`'s items per second over its last `window` progress points (what it does now, where
    throughput() averages over the whole run); None with fewer than two points or no time between."""
    mine = [p for p in points if p.stage == stage][-window:]
    if len(mine) < 2:
        return None
    seconds = (mine[-1].time - mine[0].time).total_seconds()
    if seconds <= 0:
        return None
    return max(0, mine[-1].items_done - mine[0].items_done) / seconds
