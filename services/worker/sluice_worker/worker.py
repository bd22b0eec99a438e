"""The worker loop: task slots pulling from JetStream, heartbeats, and a graceful stop.

Each slot fetches one task at a time, runs it, publishes its TaskResult and only then acks it.
While it runs, the slot reports progress (sluice.progress.<job>) and keeps the message alive
with in-progress acks. A transient failure naks the task with a growing delay (until its last
delivery, which reports failure); a task that can never succeed reports failure and is
terminated. A StopTasks message (sluice.control.<job>) stops the job's running tasks between
batches of images and makes the worker refuse its tasks from then on. On stop the slots finish
the tasks they hold (naking them after `drain_timeout_s`), then NATS drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from sluice import messaging
from sluice.auth import KeyRing
from sluice.config import Settings
from sluice.errors import InvalidArgument, Unavailable
from sluice.grpc_server import start_server, stop_server
from sluice.models.store_catalog import StoreCatalog
from sluice.v1 import tasks_pb2
from sluice.video.tools import cuda_decoding_available
from sluice.workflow import compile_workflow
from sluice_worker.options import WorkerOptions
from sluice_worker.pace import WorkflowPaces
from sluice_worker.processing import AttemptFailed, TaskControl, TaskRejected, run_task
from sluice_worker.reporting import (
    ERROR,
    INFO,
    WARNING,
    ProgressReporter,
    StoppedJobs,
    publish_reliably,
    summarise_errors,
)
from sluice_worker.threads import choose_ort_threads
from sluice_worker.video_task import run_video_task

log = logging.getLogger(__name__)
MAX_RETRY_DELAY_S = 30.0
# How long a result publish is retried while NATS is away before the task is handed back.
PUBLISH_PATIENCE_S = 120.0


def _items(task: tasks_pb2.Task) -> str:
    """What a task's items are: the frames of a video segment, or images."""
    return "frames" if task.HasField("video") else "images"


def _item_count(task: tasks_pb2.Task) -> int:
    return int(task.video.frames_total) if task.HasField("video") else len(task.input_names)


class Worker:
    """One worker process: `options.slots` task slots for one machine type."""

    def __init__(self, settings: Settings, options: WorkerOptions) -> None:
        self.settings = settings
        self.options = options
        self.health_port: int | None = None
        self._in_flight: dict[int, Msg] = {}
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._catalogs: dict[str, StoreCatalog] = {}
        self.stops = StoppedJobs()
        self._cuda: bool | None = None
        self.paces = WorkflowPaces(options.batch_size, options.adaptive_batch)
        """Per workflow, the batch and group size its next task starts at (`sluice_worker.pace`)."""
        self.ort_threads = choose_ort_threads(options.ort_threads, options.slots)
        """ONNX Runtime intra-op threads per model session (`--ort-threads`, else from the slots
        and the usable CPUs)."""

    def _catalog(self, workspace: str) -> StoreCatalog:
        """The workspace's models: built-ins, and registered ones fetched from the store once."""
        catalog = self._catalogs.get(workspace)
        if catalog is None:
            root = self.options.model_cache_dir or Path(tempfile.gettempdir()) / "sluice-models"
            catalog = StoreCatalog(workspace, self.settings.store_url, root / workspace)
            self._catalogs[workspace] = catalog
        return catalog

    @property
    def busy_slots(self) -> int:
        return len(self._in_flight)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then finish in-flight tasks and disconnect."""
        if self.options.triton_url:
            log.info("models run on the Triton server at %s", self.options.triton_url)
        else:
            log.info("%s", self.ort_threads.describe())
        health: tuple[Any, Any] | None = None
        if self.options.health_address:
            keys = KeyRing(self.settings.api_keys_file, self.settings.internal_token)
            server, servicer, self.health_port = await start_server([], self.options.health_address, keys)
            health = (server, servicer)
            log.info("health service on port %d", self.health_port)
        try:
            nc = await messaging.connect(
                self.settings.nats_url,
                f"sluice-worker-{self.options.worker_id}",
                self.settings.nats_user,
                self.settings.nats_password,
            )
            try:
                self._nc, self._js = nc, nc.jetstream()
                await self._serve(self._js, stop)
            finally:
                with contextlib.suppress(Exception):
                    await nc.drain()
        finally:
            if health is not None:
                await stop_server(*health)
        log.info("worker %s stopped", self.options.worker_id)

    async def _serve(self, js: JetStreamContext, stop: asyncio.Event) -> None:
        options = self.options
        await messaging.ensure_streams(js)
        assert self._nc is not None
        await self._nc.subscribe("sluice.control.*", cb=self._on_stop)
        await self._nc.subscribe(messaging.ROLL_CALL_SUBJECT, cb=self._on_roll_call)
        subscriptions = [
            await messaging.task_consumer(js, options.machine_type) for _ in range(options.slots)
        ]
        heartbeat = asyncio.create_task(self._heartbeats(stop))
        slots = [asyncio.create_task(self._slot(i, sub, stop)) for i, sub in enumerate(subscriptions)]
        log.info(
            "worker %s serving %s tasks with %d slots, %s",
            options.worker_id,
            options.machine_type,
            len(slots),
            options.describe_batch(),
        )
        await stop.wait()
        await self._finish(slots)
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
        # A pull subscription keeps stray status messages queued, which would stall drain.
        for sub in subscriptions:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _finish(self, slots: list[asyncio.Task[None]]) -> None:
        """Let slots finish their tasks; nak what is still running after the drain timeout."""
        _, pending = await asyncio.wait(slots, timeout=self.options.drain_timeout_s)
        if not pending:
            return
        for msg in list(self._in_flight.values()):
            log.warning("stopping: task still running, handing it back")
            with contextlib.suppress(Exception):
                await msg.nak()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _heartbeat(self) -> None:
        assert self._nc is not None
        beat = tasks_pb2.WorkerHeartbeat(
            worker_id=self.options.worker_id,
            machine_type=self.options.machine_type_enum,
            slots=self.options.slots,
            busy_slots=self.busy_slots,
        )
        try:
            await self._nc.publish(
                messaging.heartbeat_subject(self.options.machine_type), beat.SerializeToString()
            )
        except Exception as error:
            log.warning("cannot publish heartbeat: %s", error)

    async def _on_roll_call(self, msg: Msg) -> None:
        await self._heartbeat()

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._heartbeat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.heartbeat_s)

    async def _slot(self, index: int, sub: JetStreamContext.PullSubscription, stop: asyncio.Event) -> None:
        failures = messaging.QuietFailures(log, f"slot {index}: fetching tasks")
        while not stop.is_set():
            try:
                msgs = await sub.fetch(1, timeout=self.options.fetch_timeout_s)
            except TimeoutError:  # nats-py's own subclass, or at times the plain one
                failures.succeeded()
                continue
            except Exception as error:
                if stop.is_set():
                    break
                failures.failed(error)
                await asyncio.sleep(1.0)
                continue
            failures.succeeded()
            for msg in msgs:
                self._in_flight[index] = msg
                try:
                    await self._handle(msg)
                except Exception:
                    log.exception("slot %d: unexpected error handling a task", index)
                    with contextlib.suppress(Exception):
                        await msg.nak(delay=self.options.nak_delay_s)
                finally:
                    self._in_flight.pop(index, None)

    async def _on_stop(self, msg: Msg) -> None:
        try:
            stop = tasks_pb2.StopTasks.FromString(msg.data)
        except DecodeError:
            return
        job_uid = msg.subject.rsplit(".", 1)[-1]
        if self.stops.add(job_uid, stop.attempt):
            log.info("job %s (attempt %d) stops: %s", stop.job_id, stop.attempt, stop.reason)

    async def _keep_alive(self, msg: Msg, progress: ProgressReporter) -> None:
        """Tell JetStream the task is still being worked on, so it is not redelivered, and the
        scheduler that its slot is still busy with it."""
        failures = messaging.QuietFailures(log, "extending a task (in-progress ack)")
        while True:
            await asyncio.sleep(self.options.in_progress_s)
            try:
                await msg.in_progress()
                failures.succeeded()
            except Exception as error:
                failures.failed(error)
            progress.send()

    def _result(self, task: tasks_pb2.Task, job_id: str, delivery: int) -> tasks_pb2.TaskResult:
        return tasks_pb2.TaskResult(
            task_id=task.task_id,
            job_id=job_id,
            stage=task.stage,
            worker_id=self.options.worker_id,
            machine_type=self.options.machine_type_enum,
            delivery=delivery,
            attempt=task.attempt or 1,
        )

    async def _publish(self, job_uid: str, result: tasks_pb2.TaskResult, started: float) -> None:
        """Publish a result on sluice.results.<job uid>, riding out a NATS outage; its duration
        is the slot's time on this delivery (its machine time)."""
        assert self._js is not None
        result.duration_s = time.monotonic() - started
        await publish_reliably(
            self._js, messaging.result_subject(job_uid), result.SerializeToString(), PUBLISH_PATIENCE_S
        )

    async def _log(self, job_uid: str, task_id: str, severity: int, message: str) -> None:
        """A log record for the job's logs (best effort: a lost record loses no work)."""
        assert self._js is not None
        record = tasks_pb2.WorkerLog(
            task_id=task_id,
            worker_id=self.options.worker_id,
            severity=severity,
            message=message,
            time=time.time(),
        )
        try:
            await self._js.publish(messaging.logs_subject(job_uid), record.SerializeToString(), timeout=5)
        except Exception as error:
            log.warning("cannot publish a log record of task %s: %s", task_id, error)

    async def _reject(
        self, msg: Msg, job_uid: str, result: tasks_pb2.TaskResult, error: str, started: float
    ) -> None:
        """Report a task that cannot succeed, then terminate it (no redelivery)."""
        log.warning("task %s failed: %s", result.task_id or "?", error)
        result.ok = False
        result.error = error
        await self._log(job_uid, result.task_id, ERROR, f"task failed: {error}")
        await self._publish(job_uid, result, started)
        await msg.term()

    async def _handle(self, msg: Msg) -> None:
        started = time.monotonic()
        job_uid = msg.subject.rsplit(".", 1)[-1]
        delivery = msg.metadata.num_delivered or 1
        try:
            task = tasks_pb2.Task.FromString(msg.data)
        except DecodeError as error:
            empty = tasks_pb2.Task()
            result = self._result(empty, job_uid, delivery)
            await self._reject(msg, job_uid, result, f"cannot parse task: {error}", started)
            return
        result = self._result(task, task.job_id or job_uid, delivery)
        if self.stops.stopped(job_uid, task.attempt or 1):
            log.info("task %s of a stopped job: not running it", task.task_id)
            await msg.term()
            return
        if not task.task_id or not task.output_url:
            await self._reject(msg, job_uid, result, "task has no task_id or output_url", started)
            return
        progress = ProgressReporter(
            self._nc_or_fail(), messaging.progress_subject(job_uid), task, self.options, delivery, started
        )
        progress.send()  # the scheduler learns the task started (and on which delivery)
        try:
            workflow = compile_workflow(
                task.workflow_json,
                intra_op_threads=self.ort_threads.per_session,
                models=self._catalog(task.workspace),
            )
        except InvalidArgument as error:
            await self._reject(msg, job_uid, result, f"invalid workflow: {error.message}", started)
            return
        control = TaskControl(
            should_stop=lambda: self.stops.stopped(job_uid, task.attempt or 1), report=progress.update
        )
        keep_alive = asyncio.create_task(self._keep_alive(msg, progress))
        try:
            if task.HasField("video"):
                outcome = await run_video_task(
                    task,
                    workflow,
                    self.paces.get(workflow.digest).batch_size,
                    control,
                    hwaccel=await self._gpu_decoding(),
                    stream_id=f"{task.task_id}/{delivery}",
                )
            else:
                pace = self.paces.get(workflow.digest)
                outcome = await run_task(task, workflow, pace.batch_size, control, pace.group_size)
                before = self.paces.get(workflow.digest).batch_size  # another slot may have moved it
                learned = self.paces.learn(workflow.digest, outcome.group_size, outcome.per_image_s)
                if learned.batch_size != before:
                    log.info(
                        "workflow %s: %d images per run from now on (%.2f ms an image at %d)",
                        workflow.digest[:12],
                        learned.batch_size,
                        1000 * (outcome.per_image_s or 0.0),
                        pace.batch_size,
                    )
        except TaskRejected as error:
            await self._reject(msg, job_uid, result, str(error), started)
            return
        except AttemptFailed as error:
            await self._retry(msg, job_uid, result, str(error), started)
            return
        except OSError as error:
            await self._retry(msg, job_uid, result, f"object store error: {error}", started)
            return
        except Unavailable as error:
            await self._retry(
                msg, job_uid, result, f"inference backend unavailable: {error.message}", started
            )
            return
        finally:
            keep_alive.cancel()
        result.ok = not outcome.stopped
        result.stopped = outcome.stopped
        result.items_done = outcome.items_done
        result.items_failed = outcome.items_failed
        if outcome.errors:
            await self._log(job_uid, task.task_id, WARNING, summarise_errors(outcome, _items(task)))
        if outcome.stopped:
            await self._log(
                job_uid,
                task.task_id,
                INFO,
                f"task stopped after {outcome.items_done} of {_item_count(task)} {_items(task)}",
            )
        await self._publish(job_uid, result, started)
        if outcome.stopped:
            await msg.term()
        else:
            await msg.ack()
        log.info(
            "task %s %s: %d %s, %d failed, %.2fs",
            task.task_id,
            "stopped" if outcome.stopped else "done",
            outcome.items_done,
            _items(task),
            outcome.items_failed,
            result.duration_s,
        )

    async def _gpu_decoding(self) -> bool:
        """Whether videos decode on the GPU (NVDEC): gpu workers whose FFmpeg sees a CUDA device."""
        if self.options.machine_type != "gpu":
            return False
        if self._cuda is None:
            self._cuda = await asyncio.to_thread(cuda_decoding_available)
            log.info("video decoding on %s", "the GPU (NVDEC)" if self._cuda else "the CPU: no CUDA device")
        return self._cuda

    def _nc_or_fail(self) -> Client:
        assert self._nc is not None
        return self._nc

    async def _retry(
        self, msg: Msg, job_uid: str, result: tasks_pb2.TaskResult, error: str, started: float
    ) -> None:
        """A transient failure: nak for redelivery after a growing delay, or report failure on
        the last delivery."""
        delivered = msg.metadata.num_delivered or 1
        if delivered >= messaging.MAX_DELIVERIES:
            await self._reject(msg, job_uid, result, f"{error} (after {delivered} attempts)", started)
            return
        delay = min(self.options.nak_delay_s * 2 ** (delivered - 1), MAX_RETRY_DELAY_S)
        log.warning("task %s: %s; retrying in %.0f s (attempt %d)", result.task_id, error, delay, delivered)
        await self._log(
            job_uid,
            result.task_id,
            WARNING,
            f"task retried in {delay:g} s "
            f"(delivery {delivered} of {messaging.MAX_DELIVERIES} failed): {error}",
        )
        await msg.nak(delay=delay)
