"""Usage and credits against the real scheduler, staging, NATS and Postgres: a real worker and
exporter for the sum of a job's machine time; the test playing the workers (with the machine
types a slot reports) where the machine type must change; GetUsage per workspace; the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import cv2
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from nats.aio.client import Client

from sluice import messaging
from sluice.v1 import common_pb2, scheduler_pb2, staging_pb2, tasks_pb2
from sluice_exporter.service import ExportService
from sluice_worker.options import WorkerOptions
from sluice_worker.worker import Worker
from tests.images import photographs
from tests.scheduler_mesh import WORKFLOW, Mesh, create_job, job_state, job_uid, pretend_workers, take_tasks

S = scheduler_pb2
CPU, GPU, EXPORT = (
    common_pb2.MACHINE_TYPE_CPU,
    common_pb2.MACHINE_TYPE_GPU,
    common_pb2.MACHINE_TYPE_UNSPECIFIED,
)


async def _tasks_machine_seconds(mesh: Mesh, job_id: str, workspace: str = "alpha") -> float:
    """The machine time of the job's tasks as the tasks table holds it."""
    conn = await asyncpg.connect(mesh.settings.database_url)
    try:
        value = await conn.fetchval(
            "SELECT sum(machine_s + open_s) FROM scheduler.tasks WHERE workspace=$1 AND job_id=$2",
            workspace,
            job_id,
        )
    finally:
        await conn.close()
    return float(value)


async def _progress(
    nc: Client, task: tasks_pb2.Task, machine: int, elapsed_s: float, worker: str = "w"
) -> None:
    message = tasks_pb2.TaskProgress(
        task_id=task.task_id,
        job_id=task.job_id,
        worker_id=worker,
        elapsed_s=elapsed_s,
        delivery=1,
        attempt=task.attempt or 1,
        machine_type=machine,  # type: ignore[arg-type]
    )
    await nc.publish(messaging.progress_subject(job_uid(task)), message.SerializeToString())


async def _result(
    nc: Client, task: tasks_pb2.Task, machine: int, duration_s: float, worker: str = "w"
) -> None:
    result = tasks_pb2.TaskResult(
        task_id=task.task_id,
        job_id=task.job_id,
        stage=task.stage,
        ok=True,
        items_done=len(task.input_names) or 1,
        worker_id=worker,
        duration_s=duration_s,
        delivery=1,
        attempt=task.attempt or 1,
        machine_type=machine,  # type: ignore[arg-type]
    )
    await nc.jetstream().publish(messaging.result_subject(job_uid(task)), result.SerializeToString())


async def _usage_is(mesh: Mesh, job_id: str, cpu: float, gpu: float, workspace: str = "alpha") -> S.Job:
    """The job once its usage shows `cpu` and `gpu` seconds (progress is handled asynchronously)."""
    stub = mesh.scheduler_stub()
    for _ in range(100):
        job = await stub.GetJob(S.GetJobRequest(job_id=job_id), metadata=mesh.md(workspace))
        if (round(job.usage.cpu_seconds, 6), round(job.usage.gpu_seconds, 6)) == (cpu, gpu):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"usage of {job_id} stayed {job.usage}, wanted cpu {cpu} s, gpu {gpu} s")


@contextlib.asynccontextmanager
async def real_workers(mesh: Mesh) -> AsyncIterator[None]:
    """A cpu worker and an exporter in this process, on the mesh's NATS and object store."""
    nc = await messaging.connect(mesh.settings.nats_url, "test-usage")
    js = nc.jetstream()
    await messaging.ensure_streams(js)
    for kind in ("cpu", "export"):  # what other tests left for these consumers
        await js.purge_stream(messaging.TASKS_STREAM, subject=f"sluice.tasks.{kind}.>")
    stop = asyncio.Event()
    options = WorkerOptions(
        worker_id="usage-cpu", slots=2, batch_size=2, fetch_timeout_s=0.5, heartbeat_s=0.5
    )
    running = [
        asyncio.create_task(Worker(mesh.settings, options).run(stop)),
        asyncio.create_task(ExportService(nc, worker_id="usage-export", heartbeat_interval_s=0.5).run(stop)),
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*running), 60)
        await nc.close()


async def test_a_finished_jobs_usage_is_its_tasks_machine_time_at_the_configured_rates(mesh: Mesh) -> None:
    # The scheduler charges 2.5 credits per cpu hour.
    mesh.settings = dataclasses.replace(mesh.settings, credits_per_cpu_hour=2.5, credits_per_gpu_hour=9.0)
    await mesh.restart_scheduler()
    async with real_workers(mesh):
        await mesh.scheduler_stub().CreateJob(
            S.CreateJobRequest(job_id="real", workflow_id="wf", batch_id="pics", machine_type=CPU),
            metadata=mesh.md(),
        )
        job = await _finished(mesh, "real")

    used = await _tasks_machine_seconds(mesh, "real")
    assert used > 0
    assert job.usage.gpu_seconds == 0
    assert job.usage.cpu_seconds == pytest.approx(used, rel=1e-9)
    assert job.machine_seconds == pytest.approx(job.usage.cpu_seconds + job.usage.gpu_seconds, rel=1e-9)
    assert job.usage.credits == pytest.approx(used / 3600 * 2.5, rel=1e-9)
    print(
        f"[usage] tasks' machine time {used:.3f} s, job usage cpu {job.usage.cpu_seconds:.3f} s, "
        f"gpu {job.usage.gpu_seconds:.3f} s, {job.usage.credits:.6f} credits at 2.5 per cpu hour"
    )
    listed = await mesh.scheduler_stub().ListJobs(S.ListJobsRequest(), metadata=mesh.md())
    assert [j.usage for j in listed.jobs] == [job.usage]


async def _finished(mesh: Mesh, job_id: str) -> S.Job:
    stub = mesh.scheduler_stub()
    for _ in range(1200):
        job = await stub.GetJob(S.GetJobRequest(job_id=job_id), metadata=mesh.md())
        if job.state == S.JOB_STATE_COMPLETED:
            return job
        assert job.state in (S.JOB_STATE_QUEUED, S.JOB_STATE_RUNNING), job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def test_a_job_restarted_on_another_machine_type_is_charged_for_each(
    mesh: Mesh, nats_client: Client
) -> None:
    await create_job(mesh, "moved")  # 7 images in 4 tasks (1, 2, 3, 1), on gpu
    async with pretend_workers(nats_client, {"gpu": 3}):
        first, second, third = await take_tasks(nats_client, "gpu", "moved", 3)
        await _result(nats_client, first, GPU, 10.0)
        await _result(nats_client, second, GPU, 10.0)
        await _progress(nats_client, third, GPU, 40.0)  # still running: usage moves with it
        await _usage_is(mesh, "moved", cpu=0.0, gpu=60.0)
    await mesh.scheduler_stub().AbortJob(S.AbortJobRequest(job_id="moved"), metadata=mesh.md())

    await mesh.scheduler_stub().RestartJob(
        S.RestartJobRequest(job_id="moved", machine_type=CPU), metadata=mesh.md()
    )
    async with pretend_workers(nats_client, {"cpu": 2, "export": 1}):
        rerun, last = await take_tasks(nats_client, "cpu", "moved", 2)  # the third and the fourth
        await _progress(nats_client, rerun, CPU, 5.0)
        await _usage_is(mesh, "moved", cpu=5.0, gpu=60.0)
        await _result(nats_client, rerun, CPU, 12.0)
        await _result(nats_client, last, CPU, 8.0)
        (export,) = await take_tasks(nats_client, "export", "moved", 1)
        await _result(nats_client, export, EXPORT, 2.0)  # an export slot counts as cpu
        await job_state(mesh, "moved", S.JOB_STATE_COMPLETED)
    job = await _usage_is(mesh, "moved", cpu=22.0, gpu=60.0)

    assert job.machine_seconds == pytest.approx(82.0)
    assert job.machine_seconds == pytest.approx(await _tasks_machine_seconds(mesh, "moved"))
    assert job.usage.credits == pytest.approx(22.0 / 3600 * 1 + 60.0 / 3600 * 4)  # default rates


async def _stage_beta(mesh: Mesh) -> None:
    st = mesh.staging_stub()
    await st.CreateBatch(
        staging_pb2.CreateBatchRequest(batch_id="pics", type=common_pb2.BATCH_TYPE_IMAGES),
        metadata=mesh.md("beta"),
    )
    photo = cv2.imencode(".jpg", photographs()[0])[1].tobytes()
    chunks = [
        staging_pb2.UploadChunk(batch_id="pics", file_name=f"b{i}.jpg", data=photo, last=True)
        for i in range(2)
    ]
    await st.UploadFiles(iter(chunks), metadata=mesh.md("beta"))
    await mesh.scheduler_stub().CreateWorkflow(
        S.CreateWorkflowRequest(workflow_id="wf", definition_json=WORKFLOW), metadata=mesh.md("beta")
    )


async def _run_job(mesh: Mesh, nc: Client, job_id: str, workspace: str, seconds: float) -> None:
    """A gpu job (the test plays its workers) whose every task takes `seconds`, export 1 s."""
    request = S.CreateJobRequest(job_id=job_id, workflow_id="wf", batch_id="pics", machine_type=GPU)
    job = await mesh.scheduler_stub().CreateJob(request, metadata=mesh.md(workspace))
    tasks = job.stages[0].tasks_total
    for task in await take_tasks(nc, "gpu", job_id, tasks):
        await _result(nc, task, GPU, seconds)
    (export,) = await take_tasks(nc, "export", job_id, 1)
    await _result(nc, export, EXPORT, 1.0)
    await job_state(mesh, job_id, S.JOB_STATE_COMPLETED, workspace)


def _day(offset: int = 0) -> Timestamp:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    ts = Timestamp()
    ts.FromDatetime(today + timedelta(days=offset))
    return ts


async def test_usage_sums_each_workspaces_jobs_by_job_and_by_day(mesh: Mesh, nats_client: Client) -> None:
    await _stage_beta(mesh)
    async with pretend_workers(nats_client, {"gpu": 4, "export": 1}):
        await _run_job(mesh, nats_client, "small", "alpha", 10.0)  # 4 tasks: 40 s gpu, 1 s cpu
        await _run_job(mesh, nats_client, "large", "alpha", 100.0)  # 400 s gpu, 1 s cpu
        await _run_job(mesh, nats_client, "small", "beta", 1000.0)  # beta's: 2 tasks, 2000 s gpu
    stub = mesh.scheduler_stub()

    alpha = await stub.GetUsage(S.GetUsageRequest(by=S.USAGE_GROUPING_JOB), metadata=mesh.md())
    assert alpha.workspace == "alpha"
    assert [(r.key, r.jobs, r.usage.cpu_seconds, r.usage.gpu_seconds) for r in alpha.rows] == [
        ("small", 1, 1.0, 40.0),
        ("large", 1, 1.0, 400.0),
    ]
    assert (alpha.total.cpu_seconds, alpha.total.gpu_seconds) == (2.0, 440.0)
    assert alpha.total.credits == pytest.approx(2.0 / 3600 + 440.0 * 4 / 3600)
    assert alpha.rows[1].usage.credits == pytest.approx(1.0 / 3600 + 400.0 * 4 / 3600)

    by_day = await stub.GetUsage(
        S.GetUsageRequest(by=S.USAGE_GROUPING_DAY, since=_day(), until=_day(1)), metadata=mesh.md()
    )
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert [(r.key, r.jobs) for r in by_day.rows] == [(today, 2)]
    assert by_day.total == alpha.total == by_day.rows[0].usage

    beta = await stub.GetUsage(S.GetUsageRequest(by=S.USAGE_GROUPING_DAY), metadata=mesh.md("beta"))
    assert (beta.workspace, [(r.key, r.jobs) for r in beta.rows]) == ("beta", [(today, 1)])
    assert (beta.total.cpu_seconds, beta.total.gpu_seconds) == (1.0, 2000.0)

    later = await stub.GetUsage(S.GetUsageRequest(since=_day(1)), metadata=mesh.md())
    assert not later.rows and later.total.credits == 0
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetUsage(S.GetUsageRequest(since=_day(1), until=_day()), metadata=mesh.md())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "since" in (refused.value.details() or "")


async def _cli(mesh: Mesh, *args: str) -> tuple[int, str, str]:
    """The `sluice` CLI in a child process against the mesh (this process serves it)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sluice.cli.main",
        *args,
        "--api-key",
        mesh.keys["alpha"],
        "--scheduler-address",
        f"127.0.0.1:{mesh.scheduler.port}",
        "--staging-address",
        f"127.0.0.1:{mesh.staging.port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_shows_usage_while_a_job_runs_and_per_period(mesh: Mesh, nats_client: Client) -> None:
    await create_job(mesh, "live")
    async with pretend_workers(nats_client, {"gpu": 3}):
        first, *_ = await take_tasks(nats_client, "gpu", "live", 3)
        await _progress(nats_client, first, GPU, 90.0)
        await _usage_is(mesh, "live", cpu=0.0, gpu=90.0)
        code, out, err = await _cli(mesh, "batch-processing", "show-job-details", "--job-id", "live")
        assert code == 0, err
        assert "usage                cpu 0.0 s, gpu 90.0 s, 0.1000 credits" in out, out

        await _progress(nats_client, first, GPU, 180.0)  # it moves while the task runs
        await _usage_is(mesh, "live", cpu=0.0, gpu=180.0)
        code, out, err = await _cli(mesh, "batch-processing", "show-job-details", "--job-id", "live")
        assert "gpu 3.0 min, 0.2000 credits" in out, out

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    code, out, err = await _cli(mesh, "usage", "--by", "day", "--since", today, "--until", today)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "workspace: alpha"
    assert lines[2].split() == ["DAY", "JOBS", "CPU", "H", "GPU", "H", "CREDITS"]
    assert lines[3].split() == [today, "1", "0.0000", "0.0500", "0.2000"]
    assert lines[4].split() == ["total", "1", "0.0000", "0.0500", "0.2000"]
    code, out, err = await _cli(mesh, "usage")
    assert [line.split()[0] for line in out.splitlines()[3:]] == ["live", "total"]

    code, out, err = await _cli(mesh, "usage", "--since", "2024-13-01")
    assert code == 2 and "not a date (YYYY-MM-DD): '2024-13-01'" in err, err
    code, out, err = await _cli(mesh, "usage", "--since", "2024-06-02", "--until", "2024-06-01")
    assert code == 1 and "error: --since 2024-06-02 is after --until 2024-06-01" in err, err
