"""The exporter's NATS loop: pull export tasks, run them in threads, report, acknowledge.

- Up to `slots` exports run at once; each runs `export_job` in a thread while the loop sends
  `in_progress` every IN_PROGRESS_INTERVAL_S so JetStream does not redeliver a long export.
- Success: a TaskResult (ok, items_done = records, items_failed = error records) on
  sluice.results.<job>, then ack.
- A transient storage error (OSError): nak with a delay, unless this was the last delivery, in which
  case the failure is reported and the task terminated.
- An unparsable or invalid task, or any other error: a failed TaskResult, then term.
- A WorkerHeartbeat every HEARTBEAT_INTERVAL_S on sluice.workers.export.
- When `stop` is set: no more fetching; exports in flight finish and report; then return.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable

import nats.errors
from google.protobuf.message import DecodeError
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from sluice import messaging
from sluice.v1 import common_pb2, tasks_pb2
from sluice_exporter.export import ExportSummary, export_job, failed_records

log = logging.getLogger(__name__)

KIND = "export"
STAGE = "export"
IN_PROGRESS_INTERVAL_S = messaging.IN_PROGRESS_S
HEARTBEAT_INTERVAL_S = 2.0
FETCH_TIMEOUT_S = 1.0
NAK_DELAY_S = 5.0

Exporter = Callable[[tasks_pb2.Task], ExportSummary]


class InvalidTask(ValueError):
    """A task the exporter cannot run however often it is delivered."""


def default_worker_id() -> str:
    return f"exporter-{socket.gethostname()}-{os.getpid()}"


def run_task(task: tasks_pb2.Task) -> ExportSummary:
    """Run one export task against the object store (blocking)."""
    return export_job(
        task.input_url,
        task.output_url,
        task.aggregation_format,
        task.max_archive_bytes,
        [] if task.video_job else failed_records(task.failed_tasks),
        video_tasks=list(task.failed_tasks) if task.video_job else None,
    )


def parse_task(data: bytes) -> tasks_pb2.Task:
    """The export task in `data`; raises InvalidTask when it cannot be run."""
    try:
        task = tasks_pb2.Task.FromString(data)
    except DecodeError as error:
        raise InvalidTask(f"unparsable export task: {error}") from error
    if task.stage not in ("", STAGE):
        raise InvalidTask(f"not an export task (stage {task.stage!r})")
    required = ("task_id", "job_id", "input_url", "output_url")
    missing = [field for field in required if not getattr(task, field)]
    if missing:
        raise InvalidTask(f"export task without {', '.join(missing)}")
    if task.max_archive_bytes < 0:
        raise InvalidTask("max_archive_bytes must not be negative")
    return task


def _delivery(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered or 1)
    except Exception:
        return 1


def job_from_subject(subject: str) -> str:
    """The job id in a task subject, sluice.tasks.export.<job>."""
    return subject.rsplit(".", 1)[-1]


class ExportService:
    """Pulls export tasks from the shared durable consumer and runs them."""

    def __init__(
        self,
        nc: Client,
        *,
        slots: int = 1,
        worker_id: str | None = None,
        exporter: Exporter = run_task,
        in_progress_interval_s: float = IN_PROGRESS_INTERVAL_S,
        heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
    ) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream()
        self._slots = slots
        self.worker_id = worker_id or default_worker_id()
        self._exporter = exporter
        self._in_progress_interval_s = in_progress_interval_s
        self._heartbeat_interval_s = heartbeat_interval_s
        self._inflight: set[asyncio.Task[None]] = set()

    @property
    def busy_slots(self) -> int:
        return len(self._inflight)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then finish the exports in flight."""
        await messaging.ensure_streams(self._js)
        subscription = await messaging.task_consumer(self._js, KIND)
        roll_call = await self._nc.subscribe(messaging.ROLL_CALL_SUBJECT, cb=self._on_roll_call)
        heartbeats = asyncio.create_task(self._heartbeats())
        log.info("exporter %s serving with %d slot(s)", self.worker_id, self._slots)
        try:
            await self._fetch_loop(subscription, stop)
            if self._inflight:
                log.info("stopping: finishing %d export(s) in flight", len(self._inflight))
                await asyncio.gather(*self._inflight, return_exceptions=True)
        finally:
            heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeats
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
            with contextlib.suppress(Exception):
                await roll_call.unsubscribe()
        log.info("exporter %s stopped", self.worker_id)

    async def _fetch_loop(self, subscription: JetStreamContext.PullSubscription, stop: asyncio.Event) -> None:
        failures = messaging.QuietFailures(log, "fetching export tasks")
        while not stop.is_set():
            free = self._slots - len(self._inflight)
            if free <= 0:
                await self._wait_for_slot(stop)
                continue
            try:
                messages = await subscription.fetch(free, timeout=FETCH_TIMEOUT_S)
            except (TimeoutError, nats.errors.TimeoutError):
                failures.succeeded()
                continue
            except Exception as error:  # connection trouble: wait, then try again
                failures.failed(error)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
                continue
            failures.succeeded()
            for message in messages:
                task = asyncio.create_task(self.handle(message))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)

    async def _wait_for_slot(self, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({stopping, *self._inflight}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()

    async def _heartbeat(self) -> None:
        beat = tasks_pb2.WorkerHeartbeat(
            worker_id=self.worker_id,
            machine_type=common_pb2.MACHINE_TYPE_UNSPECIFIED,
            slots=self._slots,
            busy_slots=len(self._inflight),
        )
        try:
            await self._nc.publish(messaging.heartbeat_subject(KIND), beat.SerializeToString())
        except Exception as error:
            log.debug("heartbeat not sent: %s", error)

    async def _on_roll_call(self, msg: Msg) -> None:
        await self._heartbeat()

    async def _heartbeats(self) -> None:
        while True:
            await self._heartbeat()
            await asyncio.sleep(self._heartbeat_interval_s)

    async def _keep_alive(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self._in_progress_interval_s)
            try:
                await msg.in_progress()
            except Exception as error:
                log.warning("in_progress not sent: %s", error)

    async def handle(self, msg: Msg) -> None:
        """Run the export task in `msg`, report its result, and acknowledge it."""
        started = time.monotonic()
        try:
            task = parse_task(msg.data)
        except InvalidTask as error:
            log.error("terminating an invalid export task on %s: %s", msg.subject, error)
            await self._settle_failure(msg, job_from_subject(msg.subject), "", str(error), started, 0)
            return

        log.info("exporting job %s (task %s)", task.job_id, task.task_id)
        keep_alive = asyncio.create_task(self._keep_alive(msg))
        try:
            summary = await asyncio.to_thread(self._exporter, task)
        except OSError as error:
            if self._last_delivery(msg):
                log.error("export of job %s failed for good: %s", task.job_id, error)
                await self._settle_failure(
                    msg, task.job_id, task.task_id, f"storage error: {error}", started, task.attempt
                )
            else:
                log.warning("export of job %s will be retried: %s", task.job_id, error)
                await self._settle(msg.nak(delay=NAK_DELAY_S))
            return
        except Exception as error:
            log.exception("export of job %s failed", task.job_id)
            await self._settle_failure(
                msg, task.job_id, task.task_id, f"export failed: {error}", started, task.attempt
            )
            return
        finally:
            keep_alive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keep_alive

        result = tasks_pb2.TaskResult(
            task_id=task.task_id,
            job_id=task.job_id,
            stage=STAGE,
            ok=True,
            items_done=summary.records,
            items_failed=summary.failed,
            worker_id=self.worker_id,
            duration_s=time.monotonic() - started,
            attempt=task.attempt or 1,
            delivery=_delivery(msg),
        )
        log.info(
            "exported job %s: %d record(s), %d failed, %d image(s), %d archive(s)",
            task.job_id,
            summary.records,
            summary.failed,
            summary.images,
            len(summary.archives),
        )
        if await self._publish(result):
            await self._settle(msg.ack())
        else:
            await self._settle(msg.nak(delay=NAK_DELAY_S))

    @staticmethod
    def _last_delivery(msg: Msg) -> bool:
        try:
            return msg.metadata.num_delivered >= messaging.MAX_DELIVERIES
        except Exception:
            return False

    async def _publish(self, result: tasks_pb2.TaskResult) -> bool:
        try:
            await self._js.publish(messaging.result_subject(result.job_id), result.SerializeToString())
        except Exception as error:
            log.error("could not publish the result of task %s: %s", result.task_id, error)
            return False
        return True

    async def _settle_failure(
        self, msg: Msg, job_id: str, task_id: str, error: str, started: float, attempt: int
    ) -> None:
        result = tasks_pb2.TaskResult(
            task_id=task_id,
            job_id=job_id,
            stage=STAGE,
            ok=False,
            error=error,
            worker_id=self.worker_id,
            duration_s=time.monotonic() - started,
            attempt=attempt or 1,
            delivery=_delivery(msg),
        )
        if await self._publish(result):
            await self._settle(msg.term())
        else:
            await self._settle(msg.nak(delay=NAK_DELAY_S))

    @staticmethod
    async def _settle(ack: Awaitable[None]) -> None:
        try:
            await ack
        except Exception as error:
            log.warning("could not acknowledge an export task: %s", error)


async def serve_exports(
    nc: Client, stop: asyncio.Event, *, slots: int = 1, worker_id: str | None = None
) -> None:
    """Run the exporter on the connection `nc` until `stop` is set."""
    await ExportService(nc, slots=slots, worker_id=worker_id).run(stop)
