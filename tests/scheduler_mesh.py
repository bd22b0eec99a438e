"""A scheduler and staging in this process against real NATS and Postgres, and helpers that
play the workers' part (heartbeats, taking tasks, progress, results)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import cv2
import grpc
import pytest
from nats.aio.client import Client

from sluice import messaging
from sluice.clients import aio_channel, scheduler_stub, staging_stub, user_metadata
from sluice.config import Settings
from sluice.v1 import common_pb2, scheduler_pb2, staging_pb2, tasks_pb2
from sluice.webhooks import DeliveryPolicy
from sluice_scheduler.coordinator import SchedulerOptions
from sluice_scheduler.service import RunningScheduler
from sluice_scheduler.service import start as start_scheduler
from sluice_staging.server import RunningStaging
from sluice_staging.server import start as start_staging
from sluice_staging.servicer import StagingOptions
from tests.images import photographs
from tests.staging_server import MovableClock

WORKFLOW = (
    '{"version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}], "steps": ['
    '{"type": "sluice/object_detection_model@v1", "name": "detector", "image": "$inputs.image",'
    ' "model_id": "sluice/text-detector"}], "outputs": [{"type": "JsonField", "name": "predictions",'
    ' "selector": "$steps.detector.predictions"}]}'
)
GPU = common_pb2.MACHINE_TYPE_GPU
IMAGES = 7

LOOPBACK_WEBHOOKS = DeliveryPolicy(private_addresses=True)
"""The tests' webhook receivers listen on loopback."""


@dataclasses.dataclass
class Mesh:
    settings: Settings
    staging: RunningStaging
    scheduler: RunningScheduler
    channels: list[grpc.aio.Channel]
    keys: dict[str, str]
    # Staging's clock: tests move it to expire batches.
    clock: MovableClock = dataclasses.field(default_factory=MovableClock)

    def md(self, workspace: str = "alpha") -> Any:
        return user_metadata(self.keys[workspace])

    def scheduler_stub(self) -> Any:
        ch = aio_channel(f"127.0.0.1:{self.scheduler.port}")
        self.channels.append(ch)
        return scheduler_stub(ch)

    def staging_stub(self) -> Any:
        ch = aio_channel(f"127.0.0.1:{self.staging.port}")
        self.channels.append(ch)
        return staging_stub(ch)

    async def restart_scheduler(self) -> None:
        await self.scheduler.stop()
        self.scheduler = await start_scheduler(
            self.settings, "127.0.0.1:0", SchedulerOptions(task_size=3, webhooks=LOOPBACK_WEBHOOKS)
        )


@pytest.fixture
async def mesh(settings: Settings, api_keys: Any) -> AsyncIterator[Mesh]:
    clock = MovableClock()
    staging = await start_staging(
        settings, "127.0.0.1:0", StagingOptions(clock=clock, webhooks=LOOPBACK_WEBHOOKS)
    )
    settings = dataclasses.replace(settings, staging_address=f"127.0.0.1:{staging.port}")
    scheduler = await start_scheduler(
        settings, "127.0.0.1:0", SchedulerOptions(task_size=3, webhooks=LOOPBACK_WEBHOOKS)
    )
    mesh = Mesh(settings, staging, scheduler, [], api_keys[1], clock=clock)
    st = mesh.staging_stub()
    await st.CreateBatch(
        staging_pb2.CreateBatchRequest(batch_id="pics", type=common_pb2.BATCH_TYPE_IMAGES), metadata=mesh.md()
    )
    photo = cv2.imencode(".jpg", photographs()[1])[1].tobytes()
    chunks = [
        staging_pb2.UploadChunk(batch_id="pics", file_name=f"p{i}.jpg", data=photo, last=True)
        for i in range(IMAGES)
    ]
    await st.UploadFiles(iter(chunks), metadata=mesh.md())
    await mesh.scheduler_stub().CreateWorkflow(
        scheduler_pb2.CreateWorkflowRequest(workflow_id="wf", definition_json=WORKFLOW), metadata=mesh.md()
    )
    yield mesh
    for ch in mesh.channels:
        await ch.close()
    await mesh.scheduler.stop()
    await mesh.staging.stop()


@contextlib.asynccontextmanager
async def pretend_workers(nc: Client, slots: dict[str, int]) -> AsyncIterator[None]:
    """Heartbeats of one worker per machine type with that many slots, while the block runs."""

    async def beat() -> None:
        while True:
            for kind, count in slots.items():
                heartbeat = tasks_pb2.WorkerHeartbeat(worker_id=f"test-{kind}", slots=count)
                await nc.publish(messaging.heartbeat_subject(kind), heartbeat.SerializeToString())
            await asyncio.sleep(0.5)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating


def job_uid(task: tasks_pb2.Task) -> str:
    return task.task_id.rsplit("-", 1)[0]


async def progress(nc: Client, task: tasks_pb2.Task, elapsed_s: float, done: int = 0) -> None:
    message = tasks_pb2.TaskProgress(
        task_id=task.task_id,
        job_id=task.job_id,
        worker_id="test",
        items_done=done,
        elapsed_s=elapsed_s,
        delivery=1,
        attempt=task.attempt or 1,
    )
    await nc.publish(messaging.progress_subject(job_uid(task)), message.SerializeToString())


async def take_tasks(nc: Client, kind: str, job_id: str, count: int) -> list[tasks_pb2.Task]:
    """Pull `count` tasks of one job as a worker would (others are left for redelivery)."""
    js = nc.jetstream()
    sub = await messaging.task_consumer(js, kind)
    found: list[tasks_pb2.Task] = []
    for _ in range(60):
        try:
            msgs = await sub.fetch(10, timeout=0.5)
        except TimeoutError:
            msgs = []
        for msg in msgs:
            task = tasks_pb2.Task.FromString(msg.data)
            if task.job_id == job_id:
                found.append(task)
                await msg.ack()
            else:
                await msg.nak()
        if len(found) >= count:
            return found
    raise AssertionError(f"only {len(found)} of {count} tasks of {job_id} arrived")


async def report(
    nc: Client, task: tasks_pb2.Task, failed: int = 0, ok: bool = True, duration_s: float = 0.1
) -> None:
    result = tasks_pb2.TaskResult(
        task_id=task.task_id,
        job_id=task.job_id,
        stage=task.stage,
        ok=ok,
        items_done=len(task.input_names) or 1,
        items_failed=failed,
        worker_id="test",
        duration_s=duration_s,
        delivery=1,
        attempt=task.attempt or 1,
    )
    await nc.jetstream().publish(messaging.result_subject(task.job_id), result.SerializeToString())


async def job_state(mesh: Mesh, job_id: str, want: int, workspace: str = "alpha") -> scheduler_pb2.Job:
    stub = mesh.scheduler_stub()
    for _ in range(100):
        job = await stub.GetJob(scheduler_pb2.GetJobRequest(job_id=job_id), metadata=mesh.md(workspace))
        if job.state == want:
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} stayed {scheduler_pb2.JobState.Name(job.state)}")


async def job_notice(mesh: Mesh, job_id: str) -> scheduler_pb2.Job:
    stub = mesh.scheduler_stub()
    for _ in range(150):
        job = await stub.GetJob(scheduler_pb2.GetJobRequest(job_id=job_id), metadata=mesh.md())
        if job.notice:
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never said why it waits")


async def create_job(mesh: Mesh, job_id: str, **extra: Any) -> scheduler_pb2.Job:
    request = scheduler_pb2.CreateJobRequest(
        job_id=job_id, workflow_id="wf", batch_id="pics", machine_type=GPU, **extra
    )
    return await mesh.scheduler_stub().CreateJob(request, metadata=mesh.md())
