"""The worker loop: task slots pulling from JetStream, heartbeats, and a graceful stop.

Each slot fetches one task at a time, runs it, publishes its TaskResult and only then acks it.
A store failure naks the task for a retry (until its last delivery, which reports failure); a
task that can never succeed reports failure and is terminated. On stop the slots finish the
tasks they hold (naking them after `drain_timeout_s`), then NATS drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import nats.errors
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
from sluice.workflow import compile_workflow
from sluice_worker.options import WorkerOptions
from sluice_worker.processing import TaskRejected, run_task

log = logging.getLogger(__name__)


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
        health: tuple[Any, Any] | None = None
        if self.options.health_address:
            keys = KeyRing(self.settings.api_keys_file, self.settings.internal_token)
            server, servicer, self.health_port = await start_server([], self.options.health_address, keys)
            health = (server, servicer)
            log.info("health service on port %d", self.health_port)
        try:
            nc = await messaging.connect(self.settings.nats_url, f"sluice-worker-{self.options.worker_id}")
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
        subscriptions = [
            await messaging.task_consumer(js, options.machine_type) for _ in range(options.slots)
        ]
        heartbeat = asyncio.create_task(self._heartbeats(stop))
        slots = [asyncio.create_task(self._slot(i, sub, stop)) for i, sub in enumerate(subscriptions)]
        log.info(
            "worker %s serving %s tasks with %d slots", options.worker_id, options.machine_type, len(slots)
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

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        assert self._nc is not None
        subject = messaging.heartbeat_subject(self.options.machine_type)
        while not stop.is_set():
            beat = tasks_pb2.WorkerHeartbeat(
                worker_id=self.options.worker_id,
                machine_type=self.options.machine_type_enum,
                slots=self.options.slots,
                busy_slots=self.busy_slots,
            )
            try:
                await self._nc.publish(subject, beat.SerializeToString())
            except Exception as error:
                log.warning("cannot publish heartbeat: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.heartbeat_s)

    async def _slot(self, index: int, sub: JetStreamContext.PullSubscription, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(1, timeout=self.options.fetch_timeout_s)
            except nats.errors.TimeoutError:
                continue
            except Exception as error:
                if stop.is_set():
                    break
                log.warning("slot %d: fetch failed: %s", index, error)
                await asyncio.sleep(1.0)
                continue
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

    async def _keep_alive(self, msg: Msg) -> None:
        """Tell JetStream the task is still being worked on, so it is not redelivered."""
        while True:
            await asyncio.sleep(self.options.in_progress_s)
            try:
                await msg.in_progress()
            except Exception as error:
                log.warning("cannot extend task: %s", error)

    def _result(self, task: tasks_pb2.Task, job_id: str, started: float) -> tasks_pb2.TaskResult:
        return tasks_pb2.TaskResult(
            task_id=task.task_id,
            job_id=job_id,
            stage=task.stage,
            worker_id=self.options.worker_id,
            duration_s=time.monotonic() - started,
            machine_type=self.options.machine_type_enum,
        )

    async def _publish(self, result: tasks_pb2.TaskResult) -> None:
        assert self._js is not None
        await self._js.publish(messaging.result_subject(result.job_id), result.SerializeToString())

    async def _reject(self, msg: Msg, result: tasks_pb2.TaskResult, error: str) -> None:
        """Report a task that cannot succeed, then terminate it (no redelivery)."""
        log.warning("task %s failed: %s", result.task_id or "?", error)
        result.ok = False
        result.error = error
        await self._publish(result)
        await msg.term()

    async def _handle(self, msg: Msg) -> None:
        started = time.monotonic()
        job_id = msg.subject.rsplit(".", 1)[-1]
        try:
            task = tasks_pb2.Task.FromString(msg.data)
        except DecodeError as error:
            await self._reject(
                msg, self._result(tasks_pb2.Task(), job_id, started), f"cannot parse task: {error}"
            )
            return
        result = self._result(task, task.job_id or job_id, started)
        if not task.task_id or not task.output_url:
            await self._reject(msg, result, "task has no task_id or output_url")
            return
        try:
            workflow = compile_workflow(
                task.workflow_json,
                intra_op_threads=self.options.ort_threads,
                models=self._catalog(task.workspace),
            )
        except InvalidArgument as error:
            await self._reject(msg, result, f"invalid workflow: {error.message}")
            return
        keep_alive = asyncio.create_task(self._keep_alive(msg))
        try:
            outcome = await run_task(task, workflow, self.options.batch_size)
        except TaskRejected as error:
            await self._reject(msg, result, str(error))
            return
        except OSError as error:
            await self._retry(msg, result, f"object store error: {error}")
            return
        except Unavailable as error:
            await self._retry(msg, result, f"inference backend unavailable: {error.message}")
            return
        finally:
            keep_alive.cancel()
        result.ok = True
        result.items_done = outcome.items_done
        result.items_failed = outcome.items_failed
        result.duration_s = time.monotonic() - started
        await self._publish(result)
        await msg.ack()
        log.info(
            "task %s done: %d images, %d failed, %.2fs",
            task.task_id,
            outcome.items_done,
            outcome.items_failed,
            result.duration_s,
        )

    async def _retry(self, msg: Msg, result: tasks_pb2.TaskResult, error: str) -> None:
        """A transient failure: nak for redelivery, or report failure on the last delivery."""
        delivered = msg.metadata.num_delivered or 1
        if delivered >= messaging.MAX_DELIVERIES:
            await self._reject(msg, result, f"{error} (after {delivered} attempts)")
            return
        log.warning("task %s: %s; retrying (attempt %d)", result.task_id, error, delivered)
        await msg.nak(delay=self.options.nak_delay_s)
