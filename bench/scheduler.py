"""The scheduler alone: how many task results a second it records, for 1-image tasks.

    .venv/bin/python -m bench.scheduler [--images N] [--slots S]

Starts NATS and Postgres from their wheels, and staging and the scheduler as processes of their
own (`python -m sluice_staging`, `python -m sluice_scheduler --task-size 1`), no worker. The
input batch is N object rows written straight into staging's table (the scheduler reads only
names; no image is ever opened), the job is created through the real CreateJob (N tasks of one
image), a pretend worker's heartbeat offers S slots so the job starts, and then the bench
publishes N successful TaskResults on `sluice.results.<job>` as workers would (no result
objects: the scheduler does not read them). Timed: from the first publish until GetJob shows
the processing stage completed. Target: 2,000 results/s for a 20,000-image job.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.report import aligned, fmt
from sluice import messaging
from sluice.auth import add_key
from sluice.clients import aio_channel, scheduler_stub, staging_stub, user_metadata
from sluice.config import Settings
from sluice.stack.nats_process import start_nats
from sluice.stack.ports import free_port
from sluice.stack.postgres_process import create_database, start_postgres
from sluice.v1 import common_pb2, scheduler_pb2, staging_pb2, tasks_pb2

TARGET_PER_S = 2000.0
WORKSPACE = "bench"
BATCH_ID = "bench-sched-input"
JOB_ID = "bench-sched"
WORKFLOW_ID = "bench-sched"
WORKFLOW = (
    '{"version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"}], "steps": ['
    '{"type": "sluice/object_detection_model@v1", "name": "detector", "image": "$inputs.image",'
    ' "model_id": "sluice/text-detector"}], "outputs": [{"type": "JsonField", "name": "predictions",'
    ' "selector": "$steps.detector.predictions"}]}'
)
PART_SIZE = 20_000
"""Objects per part of a batch (as staging assigns them)."""
PUBLISH_AT_ONCE = 500
"""Results published concurrently (JetStream acks each; waiting for one at a time would time
the bench's publishing, not the scheduler)."""
CPU = common_pb2.MACHINE_TYPE_CPU
POLL_S = 0.25
GET_JOB_CALLS = 50
TIMEOUT_S = 600.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.scheduler", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--images", type=int, default=20_000, help="images (= tasks) in the job (default 20000)"
    )
    parser.add_argument("--slots", type=int, default=8, help="slots the pretend worker offers (default 8)")
    return parser


@dataclass(frozen=True)
class Figures:
    images: int
    create_s: float
    record_s: float
    get_job_s: float = 0.0
    """The median seconds of one GetJob of the finished job (GET_JOB_CALLS calls, one at a time)."""

    @property
    def per_s(self) -> float:
        return self.images / self.record_s if self.record_s > 0 else 0.0


def _shared_tmp() -> Path:
    """A folder the unprivileged Postgres user can reach."""
    path = Path(tempfile.mkdtemp(prefix="sluice-bench-sched-", dir="/tmp"))
    path.chmod(0o755)
    return path


@contextmanager
def _services(folder: Path) -> Iterator[tuple[Settings, str]]:
    """NATS, Postgres, staging and the scheduler (1-image tasks); yields the settings and an
    API key of workspace WORKSPACE."""
    nats = start_nats(folder / "nats")
    postgres = start_postgres(folder / "pg")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        keys_file = folder / "api_keys.json"
        key = "sk_bench_" + secrets.token_hex(8)
        add_key(keys_file, WORKSPACE, key)
        store = folder / "objects"
        store.mkdir()
        settings = Settings(
            database_url=create_database(postgres, "bench_scheduler"),
            nats_url=nats.url,
            store_url=f"file://{store}",
            staging_address=f"127.0.0.1:{free_port()}",
            scheduler_address=f"127.0.0.1:{free_port()}",
            api_keys_file=keys_file,
            internal_token="internal-" + secrets.token_hex(8),
            log_level="WARNING",
        )
        env = {**os.environ, **settings.to_env()}
        for name, args in (
            ("staging", ["-m", "sluice_staging", "--address", settings.staging_address]),
            (
                "scheduler",
                ["-m", "sluice_scheduler", "--address", settings.scheduler_address, "--task-size", "1"],
            ),
        ):
            log = (folder / f"{name}.log").open("wb")
            processes.append(subprocess.Popen([sys.executable, *args], env=env, stdout=log, stderr=log))
        yield settings, key
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        postgres.stop()
        nats.stop()


async def _until_serving(stub: object, md: object, request: object, method: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            await getattr(stub, method)(request, metadata=md)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _seed_batch(settings: Settings, staging: object, md: object, images: int) -> None:
    """An images batch of `images` object rows (no bytes: the scheduler reads only names)."""
    request = staging_pb2.CreateBatchRequest(batch_id=BATCH_ID, type=common_pb2.BATCH_TYPE_IMAGES)
    await _until_serving(staging, md, request, "CreateBatch")
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.copy_records_to_table(
            "objects",
            schema_name="staging",
            columns=["workspace", "batch_id", "name", "size_bytes", "part_index", "content_type"],
            records=[
                (WORKSPACE, BATCH_ID, f"img{i:06d}.jpg", 1000, i // PART_SIZE, "image/jpeg")
                for i in range(images)
            ],
        )
        await conn.execute(
            "UPDATE staging.batches SET object_count=$3 WHERE workspace=$1 AND batch_id=$2",
            WORKSPACE,
            BATCH_ID,
            images,
        )
    finally:
        await conn.close()


async def _heartbeats(nc: object, slots: int, stop: asyncio.Event) -> None:
    """A pretend cpu worker with `slots` slots, so the job is dispatched (and starts)."""
    beat = tasks_pb2.WorkerHeartbeat(worker_id="bench-worker", slots=slots).SerializeToString()
    while not stop.is_set():
        await nc.publish(messaging.heartbeat_subject("cpu"), beat)  # type: ignore[attr-defined]
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def _job(scheduler: object, md: object) -> scheduler_pb2.Job:
    job: scheduler_pb2.Job = await scheduler.GetJob(  # type: ignore[attr-defined]
        scheduler_pb2.GetJobRequest(job_id=JOB_ID), metadata=md
    )
    return job


async def _task_ids(settings: Settings, images: int) -> list[str]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        uid = await conn.fetchval(
            "SELECT job_uid FROM scheduler.jobs WHERE workspace=$1 AND job_id=$2", WORKSPACE, JOB_ID
        )
    finally:
        await conn.close()
    return [f"{uid}-p{i:05d}" for i in range(images)]


async def _publish_results(nc: object, task_ids: list[str]) -> None:
    js = nc.jetstream()  # type: ignore[attr-defined]
    subject = messaging.result_subject(JOB_ID)
    for start in range(0, len(task_ids), PUBLISH_AT_ONCE):
        await asyncio.gather(
            *(
                js.publish(
                    subject,
                    tasks_pb2.TaskResult(
                        task_id=task_id,
                        job_id=JOB_ID,
                        stage="processing",
                        ok=True,
                        items_done=1,
                        worker_id="bench-worker",
                        duration_s=0.01,
                        delivery=1,
                        attempt=1,
                        machine_type=CPU,
                    ).SerializeToString(),
                )
                for task_id in task_ids[start : start + PUBLISH_AT_ONCE]
            )
        )


async def _measure(settings: Settings, key: str, images: int, slots: int) -> Figures:
    md = user_metadata(key)
    staging_channel = aio_channel(settings.staging_address)
    scheduler_channel = aio_channel(settings.scheduler_address)
    nc = await messaging.connect(settings.nats_url, "bench-scheduler")
    stop = asyncio.Event()
    beating = asyncio.create_task(_heartbeats(nc, slots, stop))
    try:
        staging, scheduler = staging_stub(staging_channel), scheduler_stub(scheduler_channel)
        await _seed_batch(settings, staging, md, images)
        workflow = scheduler_pb2.CreateWorkflowRequest(workflow_id=WORKFLOW_ID, definition_json=WORKFLOW)
        await _until_serving(scheduler, md, workflow, "CreateWorkflow")
        started = time.monotonic()
        await scheduler.CreateJob(
            scheduler_pb2.CreateJobRequest(
                job_id=JOB_ID,
                workflow_id=WORKFLOW_ID,
                batch_id=BATCH_ID,
                machine_type=common_pb2.MACHINE_TYPE_CPU,
            ),
            metadata=md,
        )
        create_s = time.monotonic() - started
        while (await _job(scheduler, md)).state != scheduler_pb2.JOB_STATE_RUNNING:
            if time.monotonic() - started > TIMEOUT_S:
                raise SystemExit("the job never started: no heartbeat reached the scheduler?")
            await asyncio.sleep(POLL_S)
        task_ids = await _task_ids(settings, images)
        first_publish = time.monotonic()
        publishing = asyncio.create_task(_publish_results(nc, task_ids))
        while True:
            job = await _job(scheduler, md)
            if job.stages[0].state == scheduler_pb2.STAGE_STATE_COMPLETED:
                break
            if time.monotonic() - first_publish > TIMEOUT_S:
                raise SystemExit(f"the processing stage did not complete: {job.stages[0]}")
            await asyncio.sleep(POLL_S)
        record_s = time.monotonic() - first_publish
        await publishing
        processing = job.stages[0]
        if (processing.tasks_done, processing.items_done) != (images, images):
            raise SystemExit(f"the stage completed with {processing.tasks_done} tasks done of {images}")
        calls = []
        for _ in range(GET_JOB_CALLS):
            called = time.perf_counter()
            await _job(scheduler, md)
            calls.append(time.perf_counter() - called)
        return Figures(images, create_s, record_s, statistics.median(calls))
    finally:
        stop.set()
        await beating
        await nc.close()
        await staging_channel.close()
        await scheduler_channel.close()


def report(figures: Figures) -> str:
    rows = [
        ("way", "results", "seconds", "results/s", "target", "note"),
        (
            "scheduler: results recorded",
            str(figures.images),
            fmt(figures.record_s, ".2f"),
            fmt(figures.per_s, ",.0f"),
            f">= {TARGET_PER_S:,.0f}/s" + (" ok" if figures.per_s >= TARGET_PER_S else " MISSED"),
            "1-image tasks; first publish -> GetJob shows the processing stage completed",
        ),
        (
            "scheduler: job created",
            str(figures.images),
            fmt(figures.create_s, ".2f"),
            fmt(figures.images / figures.create_s if figures.create_s > 0 else None, ",.0f"),
            "",
            "CreateJob: checks, the batch listed, every task written",
        ),
        (
            "GetJob of that job",
            str(figures.images),
            fmt(figures.get_job_s, ".4f"),
            "",
            "",
            f"median of {GET_JOB_CALLS} calls, one at a time, once it ended (its tasks: {figures.images})",
        ),
    ]
    return aligned(rows, right={1, 2, 3})


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    folder = _shared_tmp()
    try:
        with _services(folder) as (settings, key):
            figures = asyncio.run(_measure(settings, key, args.images, args.slots))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(report(figures))
    return 0 if figures.per_s >= TARGET_PER_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
