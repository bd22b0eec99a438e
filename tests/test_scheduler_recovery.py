"""A job whose last result came while staging was away still ends, without a scheduler restart."""

from __future__ import annotations

import asyncio
import time

from nats.aio.client import Client

from sluice.v1 import scheduler_pb2
from sluice_staging.server import start as start_staging
from sluice_staging.servicer import StagingOptions
from tests.scheduler_mesh import Mesh, create_job, job_state, pretend_workers, report, take_tasks

S = scheduler_pb2


async def processing_tasks_done(mesh: Mesh, job_id: str, want: int) -> S.Job:
    stub = mesh.scheduler_stub()
    for _ in range(100):
        job = await stub.GetJob(S.GetJobRequest(job_id=job_id), metadata=mesh.md())
        if job.stages[0].tasks_done == want:
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id}: {job.stages[0].tasks_done} processing tasks done, not {want}")


async def test_a_job_whose_stage_ended_while_staging_was_away_completes(
    mesh: Mesh, nats_client: Client
) -> None:
    await create_job(mesh, "outage")
    async with pretend_workers(nats_client, {"gpu": 4, "export": 1}):
        *first, last = await take_tasks(nats_client, "gpu", "outage", 4)
        for task in first:
            await report(nats_client, task)
        await processing_tasks_done(mesh, "outage", 3)
        port = mesh.staging.port
        await mesh.staging.stop()  # registering the processing batch fails from now on
        await report(nats_client, last)
        stuck = await processing_tasks_done(mesh, "outage", 4)
        assert stuck.state == S.JOB_STATE_RUNNING
        assert stuck.stages[0].state == S.STAGE_STATE_RUNNING  # it could not complete
        mesh.staging = await start_staging(
            mesh.settings, f"127.0.0.1:{port}", StagingOptions(clock=mesh.clock)
        )
        back = time.monotonic()
        (export,) = await take_tasks(nats_client, "export", "outage", 1)
        assert time.monotonic() - back < 15.0
        await report(nats_client, export)
        done = await job_state(mesh, "outage", S.JOB_STATE_COMPLETED)
    assert [s.state for s in done.stages] == [S.STAGE_STATE_COMPLETED] * 2
