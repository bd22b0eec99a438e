"""What a worker tells the rest: progress of its running tasks, results that must arrive, and
which jobs it was told to stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from nats.aio.client import Client
from nats.js import JetStreamContext

from sluice.v1 import tasks_pb2
from sluice_worker.options import WorkerOptions
from sluice_worker.processing import TaskOutcome

log = logging.getLogger(__name__)

INFO, WARNING, ERROR = 1, 2, 3  # sluice.v1.LogSeverity
STOP_KEPT_S = 3600.0


class StoppedJobs:
    """Jobs (by uid) whose tasks of a given attempt or earlier must not run."""

    def __init__(self) -> None:
        self._attempts: dict[str, tuple[int, float]] = {}

    def add(self, job_uid: str, attempt: int) -> bool:
        """Remember a stop; True when it is news."""
        now = time.monotonic()
        self._attempts = {uid: kept for uid, kept in self._attempts.items() if now - kept[1] < STOP_KEPT_S}
        known = self._attempts.get(job_uid)
        self._attempts[job_uid] = (max(attempt, known[0] if known else 0), now)
        return known is None or known[0] < attempt

    def stopped(self, job_uid: str, attempt: int) -> bool:
        known = self._attempts.get(job_uid)
        return known is not None and attempt <= known[0]


class ProgressReporter:
    """Sends a task's TaskProgress: at once when asked, and no more often than the options say
    when items move."""

    def __init__(
        self,
        nc: Client,
        subject: str,
        task: tasks_pb2.Task,
        options: WorkerOptions,
        delivery: int,
        started: float,
    ) -> None:
        self._nc = nc
        self._subject = subject
        self._interval = options.progress_interval_s
        self._started = started
        self._last_sent = 0.0
        self._sending: set[asyncio.Task[None]] = set()
        self._message = tasks_pb2.TaskProgress(
            task_id=task.task_id,
            job_id=task.job_id,
            worker_id=options.worker_id,
            delivery=delivery,
            attempt=task.attempt or 1,
            machine_type=options.machine_type_enum,
        )

    def update(self, items_done: int, items_failed: int) -> None:
        """Called from the task's coroutine between batches."""
        self._message.items_done = items_done
        self._message.items_failed = items_failed
        if time.monotonic() - self._last_sent >= self._interval:
            self.send()

    def send(self) -> None:
        self._last_sent = time.monotonic()
        self._message.elapsed_s = self._last_sent - self._started
        sending = asyncio.get_running_loop().create_task(self._publish(self._message.SerializeToString()))
        self._sending.add(sending)  # the loop keeps only a weak reference
        sending.add_done_callback(self._sending.discard)

    async def _publish(self, data: bytes) -> None:
        try:
            await self._nc.publish(self._subject, data)
        except Exception as error:  # progress is lossy; the result is what counts
            log.debug("cannot publish progress: %s", error)


async def publish_reliably(js: JetStreamContext, subject: str, data: bytes, patience_s: float) -> None:
    """Publish to JetStream, retrying with backoff while NATS is unreachable (up to `patience_s`);
    raises the last error after that."""
    deadline = time.monotonic() + patience_s
    delay = 0.5
    warned = False
    while True:
        try:
            await js.publish(subject, data, timeout=5)
            if warned:
                log.info("published to %s after NATS came back", subject)
            return
        except Exception as error:
            if time.monotonic() + delay > deadline:
                raise
            if not warned:
                log.warning("cannot publish to %s (%s); retrying until NATS is back", subject, error)
                warned = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def summarise_errors(outcome: TaskOutcome, items: str = "images") -> str:
    """One line on a task's failed images (or frames): how many, and the reasons by count."""
    reasons = Counter(outcome.errors)
    listed = "; ".join(f"{count} x {reason}" for reason, count in reasons.most_common(5))
    more = f"; and {len(reasons) - 5} other reasons" if len(reasons) > 5 else ""
    return f"{outcome.items_failed} of {outcome.items_done} {items} failed: {listed}{more}"
