"""The scheduler against real staging, NATS and Postgres; the test plays the worker's part.

Jobs here use the gpu machine type so that no worker started by another test takes their tasks.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from nats.aio.client import Client

from sluice import storage
from sluice.storage import ObjectStore
from sluice.v1 import scheduler_pb2, staging_pb2
from tests.scheduler_mesh import (
    GPU,
    IMAGES,
    WORKFLOW,
    Mesh,
    create_job,
    job_notice,
    job_state,
    pretend_workers,
    report,
    take_tasks,
)


async def test_job_moves_through_its_stages(mesh: Mesh, nats_client: Client) -> None:
    job = await create_job(mesh, "j1")
    assert job.state == scheduler_pb2.JOB_STATE_QUEUED
    job = await job_notice(mesh, "j1")
    assert job.state == scheduler_pb2.JOB_STATE_QUEUED
    assert "no gpu worker is running" in job.notice
    assert [s.name for s in job.stages] == ["processing", "export"]
    assert [s.output_batch_id for s in job.stages] == ["j1-processing", "j1-export"]
    # Queued means nothing started: no stage says running before a task is dispatched.
    assert [scheduler_pb2.StageState.Name(s.state) for s in job.stages] == ["STAGE_STATE_PENDING"] * 2
    async with pretend_workers(nats_client, {"gpu": 4, "export": 1}):
        tasks = await take_tasks(nats_client, "gpu", "j1", 4)
        # The first tasks are small (1, 2, then --task-size), so the first records come early.
        assert sorted(len(t.input_names) for t in tasks) == [1, 1, 2, 3]
        assert sorted(n for t in tasks for n in t.input_names) == [f"p{i}.jpg" for i in range(IMAGES)]
        await report(nats_client, tasks[0], failed=1)
        await report(nats_client, tasks[0], failed=1)  # delivered twice: counted once
        running = await job_state(mesh, "j1", scheduler_pb2.JOB_STATE_RUNNING)
        assert running.stages[0].state == scheduler_pb2.STAGE_STATE_RUNNING
        for task in tasks[1:]:
            await report(nats_client, task)
        (export,) = await take_tasks(nats_client, "export", "j1", 1)
        assert export.stage == "export" and export.input_url.endswith("j1-processing")
        assert running.stages[0].items_total == IMAGES
        await report(nats_client, export)
        done = await job_state(mesh, "j1", scheduler_pb2.JOB_STATE_COMPLETED_WITH_ERRORS)
    processing = done.stages[0]
    assert (processing.tasks_done, processing.tasks_total) == (4, 4)
    assert (processing.items_done, processing.items_failed) == (IMAGES, 1)
    assert "1 of 7 images failed" in done.error
    assert not done.notice
    assert done.machine_seconds == pytest.approx(0.5)  # five results of 0.1 s, the duplicate not counted


async def test_failure_rate_fails_the_job(mesh: Mesh, nats_client: Client) -> None:
    await create_job(mesh, "j2", max_image_failure_rate=0.2)
    async with pretend_workers(nats_client, {"gpu": 4}):
        tasks = await take_tasks(nats_client, "gpu", "j2", 4)
        for task in tasks:
            await report(nats_client, task, failed=1)
        job = await job_state(mesh, "j2", scheduler_pb2.JOB_STATE_FAILED)
    assert "4 of 7 images failed" in job.error and "20.0%" in job.error


async def test_results_sent_while_the_scheduler_is_down_are_not_lost(mesh: Mesh, nats_client: Client) -> None:
    await create_job(mesh, "j3")
    async with pretend_workers(nats_client, {"gpu": 4, "export": 1}):
        tasks = await take_tasks(nats_client, "gpu", "j3", 4)
        await mesh.scheduler.stop()
        for task in tasks:
            await report(nats_client, task)
        await mesh.restart_scheduler()
        (export,) = await take_tasks(nats_client, "export", "j3", 1)
        await report(nats_client, export)
        await job_state(mesh, "j3", scheduler_pb2.JOB_STATE_COMPLETED)


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"workflow_id": "nope"}, grpc.StatusCode.NOT_FOUND, "workflow 'nope' not found"),
        ({"batch_id": "nope"}, grpc.StatusCode.NOT_FOUND, "batch 'nope' not found"),
        ({"batch_id": "Bad Id"}, grpc.StatusCode.INVALID_ARGUMENT, "invalid batch id"),
        ({"job_id": "x" * 65}, grpc.StatusCode.INVALID_ARGUMENT, "invalid job id"),
        (
            {"workflow_params_json": '{"nope": 1}'},
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown parameter 'nope'",
        ),
        ({"workflow_params_json": "[1]"}, grpc.StatusCode.INVALID_ARGUMENT, "must be a JSON object"),
        ({"image_input_name": "picture"}, grpc.StatusCode.INVALID_ARGUMENT, "image input is named 'image'"),
        ({"image_outputs_to_save": ["annotated"]}, grpc.StatusCode.INVALID_ARGUMENT, "unknown image outputs"),
    ],
)
async def test_bad_jobs_are_refused(
    mesh: Mesh, change: dict[str, str], code: grpc.StatusCode, message: str
) -> None:
    fields = {"job_id": "bad", "workflow_id": "wf", "batch_id": "pics", "machine_type": GPU, **change}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mesh.scheduler_stub().CreateJob(scheduler_pb2.CreateJobRequest(**fields), metadata=mesh.md())
    assert caught.value.code() == code
    assert message in (caught.value.details() or "")


async def test_workflows_are_versioned_and_validated(mesh: Mesh) -> None:
    stub = mesh.scheduler_stub()
    same = await stub.CreateWorkflow(
        scheduler_pb2.CreateWorkflowRequest(workflow_id="wf", definition_json=WORKFLOW), metadata=mesh.md()
    )
    assert same.version == 1
    changed = WORKFLOW.replace('"version": "1.0"', '"version": "1.1"')
    newer = await stub.CreateWorkflow(
        scheduler_pb2.CreateWorkflowRequest(workflow_id="wf", definition_json=changed), metadata=mesh.md()
    )
    assert newer.version == 2
    for bad, expected in [
        ("{not json", "not valid JSON"),
        (WORKFLOW.replace("sluice/text-detector", "nope"), "nope"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateWorkflow(
                scheduler_pb2.CreateWorkflowRequest(workflow_id="wf2", definition_json=bad),
                metadata=mesh.md(),
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert expected in (caught.value.details() or "")


async def test_another_workspace_sees_nothing(mesh: Mesh) -> None:
    await create_job(mesh, "mine")
    stub = mesh.scheduler_stub()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetJob(scheduler_pb2.GetJobRequest(job_id="mine"), metadata=mesh.md("beta"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await stub.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=mesh.md("beta"))
    assert not listed.jobs
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateJob(
            scheduler_pb2.CreateJobRequest(workflow_id="wf", batch_id="pics", machine_type=GPU),
            metadata=mesh.md("beta"),
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_first_records_are_listed_while_the_job_runs(mesh: Mesh, nats_client: Client) -> None:
    await create_job(mesh, "early")
    output = ObjectStore(mesh.settings.store_url).batch_url("alpha", "early-processing")
    async with pretend_workers(nats_client, {"gpu": 4}):
        first, *_ = sorted(await take_tasks(nats_client, "gpu", "early", 4), key=lambda t: t.task_id)
        assert len(first.input_names) == 1  # the first task is one image: its records come first
        name = f"results/{first.task_id}.jsonl"
        storage.write_bytes(output, name, b'{"image": "p0.jpg"}\n')  # what a worker writes
        await report(nats_client, first)
        staging = mesh.staging_stub()
        request = staging_pb2.ListBatchContentRequest(batch_id="early-processing", all_parts=True)
        listed: list[str] = []
        for _ in range(50):
            with contextlib.suppress(grpc.aio.AioRpcError):  # NOT_FOUND until it is registered
                content = await staging.ListBatchContent(request, metadata=mesh.md())
                listed = [o.name for o in content.objects]
            if listed:
                break
            await asyncio.sleep(0.1)
        assert listed == [name]
        job = await job_state(mesh, "early", scheduler_pb2.JOB_STATE_RUNNING)
        assert (job.stages[0].tasks_done, job.stages[0].items_done) == (1, 1)
        # Held for the running job as its input batch is, so no expiry sweep deletes it under it.
        for _ in range(50):
            held = await staging.GetBatch(
                staging_pb2.GetBatchRequest(batch_id="early-processing"), metadata=mesh.md()
            )
            if held.HasField("held_until"):
                break
            await asyncio.sleep(0.1)
        pics = await staging.GetBatch(staging_pb2.GetBatchRequest(batch_id="pics"), metadata=mesh.md())
        assert held.held_until.ToSeconds() > mesh.clock().timestamp() + 600
        assert abs(held.held_until.ToSeconds() - pics.held_until.ToSeconds()) < 30
