"""Job control in the scheduler against real staging, NATS and Postgres; the test plays the
workers (heartbeats, progress, results), so every dispatch decision can be watched."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import asyncpg
import grpc
import pytest
from nats.aio.client import Client

from sluice import messaging
from sluice.v1 import scheduler_pb2, tasks_pb2
from sluice_scheduler.backlog import serve_backlog
from tests.scheduler_mesh import (
    Mesh,
    create_job,
    job_state,
    job_uid,
    pretend_workers,
    progress,
    report,
    take_tasks,
)

S = scheduler_pb2


async def no_task_arrives(nc: Client, kind: str, job_id: str, within_s: float = 1.5) -> None:
    """No task of `job_id` reaches the queue within `within_s`. Tasks of other jobs (an earlier
    test's, in the session's NATS) are handed back for later."""
    sub = await messaging.task_consumer(nc.jetstream(), kind)
    deadline = asyncio.get_running_loop().time() + within_s
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            msgs = await sub.fetch(1, timeout=left)
        except TimeoutError:
            return
        task = tasks_pb2.Task.FromString(msgs[0].data)
        if task.job_id == job_id:
            raise AssertionError(f"a task arrived: {task.task_id}")
        await msgs[0].nak(delay=within_s)


async def run_tasks(nc: Client, job_id: str, count: int) -> list[tasks_pb2.Task]:
    """Play the worker: take the job's tasks one by one and report each done."""
    done: list[tasks_pb2.Task] = []
    while len(done) < count:
        for task in await take_tasks(nc, "gpu", job_id, 1):
            await report(nc, task)
            done.append(task)
    return done


async def finish(mesh: Mesh, nc: Client, job_id: str, tasks: int) -> S.Job:
    """Play the worker until the job ends: report each of its tasks, then the export."""
    await run_tasks(nc, job_id, tasks)
    (export,) = await take_tasks(nc, "export", job_id, 1)
    await report(nc, export)
    return await job_state(mesh, job_id, S.JOB_STATE_COMPLETED)


async def test_max_parallel_tasks_keeps_the_rest_out_of_the_queue(mesh: Mesh, nats_client: Client) -> None:
    await create_job(mesh, "par", max_parallel_tasks=1)
    async with pretend_workers(nats_client, {"gpu": 4, "export": 1}):
        (first,) = await take_tasks(nats_client, "gpu", "par", 1)
        await no_task_arrives(nats_client, "gpu", "par")
        await report(nats_client, first)
        (second,) = await take_tasks(nats_client, "gpu", "par", 1)
        assert second.task_id != first.task_id
        # A task is published, then marked queued: the counts may lag the queue for a moment.
        for _ in range(20):
            job = await mesh.scheduler_stub().GetJob(S.GetJobRequest(job_id="par"), metadata=mesh.md())
            if job.stages[0].task_counts.waiting == 2:
                break
            await asyncio.sleep(0.1)
        assert job.stages[0].task_counts.done == 1 and job.stages[0].task_counts.waiting == 2


async def test_jobs_share_the_slots_round_robin(mesh: Mesh, nats_client: Client) -> None:
    await create_job(mesh, "big")
    await create_job(mesh, "small")
    order: list[str] = []
    async with pretend_workers(nats_client, {"gpu": 1}):
        for _ in range(4):
            sub = await messaging.task_consumer(nats_client.jetstream(), "gpu")
            (msg,) = await sub.fetch(1, timeout=10)
            task = tasks_pb2.Task.FromString(msg.data)
            await msg.ack()
            order.append(task.job_id)
            await report(nats_client, task)
    assert order == ["big", "small", "big", "small"], order


async def test_short_tasks_queue_one_ahead_until_another_job_waits(mesh: Mesh, nats_client: Client) -> None:
    """One slot. Before any task ended, one task is queued; once tasks are known to be short, a
    second waits behind the running one, so the slot never idles for the result's round trip.
    A new job turns that off: nothing more of the first goes out until it has had the slot."""
    await create_job(mesh, "quick")  # 7 images in tasks of 1, 2, 3, 1
    async with pretend_workers(nats_client, {"gpu": 1}):
        (first,) = await take_tasks(nats_client, "gpu", "quick", 1)
        await no_task_arrives(nats_client, "gpu", "quick")
        await report(nats_client, first, duration_s=0.01)
        running, queued = await take_tasks(nats_client, "gpu", "quick", 2)
        await no_task_arrives(nats_client, "gpu", "quick")
        await create_job(mesh, "late")
        await report(nats_client, running, duration_s=0.01)
        await no_task_arrives(nats_client, "gpu", "quick")  # the queued one drains first
        await report(nats_client, queued, duration_s=0.01)
        (task,) = await take_tasks(nats_client, "gpu", "late", 1)
        assert task.job_id == "late"


async def test_long_tasks_keep_the_queue_to_one_per_slot(mesh: Mesh, nats_client: Client) -> None:
    """A job of long tasks gets one task per slot; and while one of its tasks holds a slot, a
    job of short tasks queues nothing ahead (it would wait behind the long one)."""
    await create_job(mesh, "steady")  # 7 images in tasks of 1, 2, 3, 1
    async with pretend_workers(nats_client, {"gpu": 2}):
        first, second = await take_tasks(nats_client, "gpu", "steady", 2)
        await report(nats_client, first, duration_s=5.0)  # 1 image in 5 s: tasks of about 9 s
        (third,) = await take_tasks(nats_client, "gpu", "steady", 1)
        await no_task_arrives(nats_client, "gpu", "steady")
        await report(nats_client, second, duration_s=10.0)
        (last,) = await take_tasks(nats_client, "gpu", "steady", 1)  # none of steady's left waiting
        await create_job(mesh, "brisk")
        await report(nats_client, third, duration_s=15.0)
        (brisk,) = await take_tasks(nats_client, "gpu", "brisk", 1)
        await report(nats_client, brisk, duration_s=0.01)  # brisk is short; steady's last runs on
        (brisk,) = await take_tasks(nats_client, "gpu", "brisk", 1)
        await no_task_arrives(nats_client, "gpu", "brisk")
        await report(nats_client, last, duration_s=5.0)  # the long one ended: brisk queues ahead
        await take_tasks(nats_client, "gpu", "brisk", 2)


async def test_a_starting_scheduler_calls_the_roll_and_fills_the_slots_it_hears_of(
    mesh: Mesh, nats_client: Client
) -> None:
    calls = await nats_client.subscribe(messaging.ROLL_CALL_SUBJECT)
    await mesh.restart_scheduler()
    await calls.next_msg(timeout=10)
    await calls.unsubscribe()
    await create_job(mesh, "heard")
    await no_task_arrives(nats_client, "gpu", "heard", within_s=1.0)  # no worker known: nothing queued
    beat = tasks_pb2.WorkerHeartbeat(worker_id="answering", slots=1)
    await nats_client.publish(messaging.heartbeat_subject("gpu"), beat.SerializeToString())
    (task,) = await take_tasks(nats_client, "gpu", "heard", 1)
    assert task.job_id == "heard"


async def test_priority_goes_first(mesh: Mesh, nats_client: Client) -> None:
    await create_job(mesh, "low")
    await create_job(mesh, "high", priority=5)
    async with pretend_workers(nats_client, {"gpu": 1}):
        (task,) = await take_tasks(nats_client, "gpu", "high", 1)
        assert task.job_id == "high"


async def test_abort_withdraws_and_stops_then_restart_finishes(mesh: Mesh, nats_client: Client) -> None:
    await create_job(mesh, "ab")
    async with pretend_workers(nats_client, {"gpu": 2, "export": 1}):
        running, _queued = await take_tasks(nats_client, "gpu", "ab", 2)
        stops: asyncio.Queue[tasks_pb2.StopTasks] = asyncio.Queue()

        async def on_stop(msg: object) -> None:
            stops.put_nowait(tasks_pb2.StopTasks.FromString(msg.data))  # type: ignore[attr-defined]

        await nats_client.subscribe(messaging.control_subject(job_uid(running)), cb=on_stop)
        stub = mesh.scheduler_stub()
        aborted = await stub.AbortJob(S.AbortJobRequest(job_id="ab"), metadata=mesh.md())
        assert aborted.state == S.JOB_STATE_ABORTED and "aborted by its owner" in aborted.error
        stop = await asyncio.wait_for(stops.get(), 5)
        assert (stop.job_id, stop.attempt) == ("ab", 1)
        await no_task_arrives(nats_client, "gpu", "ab")  # the other tasks never reached the queue
        details = await stub.GetJob(S.GetJobRequest(job_id="ab"), metadata=mesh.md())
        assert details.stages[0].state == S.STAGE_STATE_ABORTED
        assert details.stages[0].task_counts.interrupted == 4
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.AbortJob(S.AbortJobRequest(job_id="ab"), metadata=mesh.md())
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "already ended (aborted)" in (caught.value.details() or "")

        # The worker that held a task stops it after one image and says so.
        stopped = tasks_pb2.TaskResult(
            task_id=running.task_id, job_id="ab", stopped=True, items_done=1, worker_id="test",
            duration_s=0.5, delivery=1, attempt=1,
        )  # fmt: skip
        await nats_client.jetstream().publish(messaging.result_subject("ab"), stopped.SerializeToString())
        restarted = await stub.RestartJob(S.RestartJobRequest(job_id="ab"), metadata=mesh.md())
        assert restarted.attempt == 2
        tasks = await run_tasks(nats_client, "ab", 4)
        assert {t.attempt for t in tasks} == {2}
        (export,) = await take_tasks(nats_client, "export", "ab", 1)
        await report(nats_client, export)
        done = await job_state(mesh, "ab", S.JOB_STATE_COMPLETED)
    assert done.attempt == 2 and done.stages[0].items_done == 7
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RestartJob(S.RestartJobRequest(job_id="ab"), metadata=mesh.md())
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "only an aborted, stopped or failed job can be restarted" in (caught.value.details() or "")


async def test_runtime_cap_stops_the_job_and_restart_needs_a_larger_one(
    mesh: Mesh, nats_client: Client
) -> None:
    await create_job(mesh, "cap", max_runtime_seconds=5)
    async with pretend_workers(nats_client, {"gpu": 1, "export": 1}):
        (task,) = await take_tasks(nats_client, "gpu", "cap", 1)
        await progress(nats_client, task, elapsed_s=2.0, done=1)
        await asyncio.sleep(1.5)
        job = await mesh.scheduler_stub().GetJob(S.GetJobRequest(job_id="cap"), metadata=mesh.md())
        assert job.state == S.JOB_STATE_RUNNING and job.machine_seconds == pytest.approx(2.0)
        assert job.stages[0].items_done == 1  # progress moves within a task
        await progress(nats_client, task, elapsed_s=5.5, done=2)
        stopped = await job_state(mesh, "cap", S.JOB_STATE_STOPPED)
        assert "runtime limit reached" in stopped.error and "cap is 5 s" in stopped.error
        stub = mesh.scheduler_stub()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RestartJob(S.RestartJobRequest(job_id="cap"), metadata=mesh.md())
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "larger --max-runtime-seconds" in (caught.value.details() or "")
        request = S.RestartJobRequest(job_id="cap", max_runtime_seconds=100)
        assert (await stub.RestartJob(request, metadata=mesh.md())).attempt == 2
        await finish(mesh, nats_client, "cap", 4)


async def test_a_task_out_of_deliveries_fails_and_the_job_goes_on(mesh: Mesh, nats_client: Client) -> None:
    await create_job(mesh, "poison", max_parallel_tasks=1)
    sub = await messaging.task_consumer(nats_client.jetstream(), "gpu")
    async with pretend_workers(nats_client, {"gpu": 1, "export": 1}):
        for _ in range(messaging.MAX_DELIVERIES):  # every delivery dies (nak: at once)
            (msg,) = await sub.fetch(1, timeout=10)
            await msg.nak()
        await run_tasks(nats_client, "poison", 3)
        (export,) = await take_tasks(nats_client, "export", "poison", 1)
        assert [t.task_id for t in export.failed_tasks] == [f"{job_uid(export)}-p00000"]
        assert len(export.failed_tasks[0].input_names) == 1  # the first task holds one image
        await report(nats_client, export)
        job = await job_state(mesh, "poison", S.JOB_STATE_COMPLETED_WITH_ERRORS)
    assert job.stages[0].items_failed == 1
    logs = await mesh.scheduler_stub().FetchLogs(
        S.FetchLogsRequest(job_id="poison", min_severity=S.LOG_SEVERITY_ERROR), metadata=mesh.md()
    )
    assert any("no result after 5 deliveries" in r.message for r in logs.records), logs
    assert all(r.severity == S.LOG_SEVERITY_ERROR for r in logs.records)


async def test_list_jobs_pages_and_filters(mesh: Mesh) -> None:
    for name in ("a1", "a2", "a3"):
        await create_job(mesh, name)
    stub = mesh.scheduler_stub()
    first = await stub.ListJobs(S.ListJobsRequest(page_size=2), metadata=mesh.md())
    assert [j.job_id for j in first.jobs] == ["a3", "a2"] and first.next_page_token
    second = await stub.ListJobs(
        S.ListJobsRequest(page_size=2, page_token=first.next_page_token), metadata=mesh.md()
    )
    assert [j.job_id for j in second.jobs] == ["a1"] and not second.next_page_token
    queued = await stub.ListJobs(S.ListJobsRequest(states=[S.JOB_STATE_QUEUED]), metadata=mesh.md())
    assert len(queued.jobs) == 3
    none = await stub.ListJobs(S.ListJobsRequest(states=[S.JOB_STATE_COMPLETED]), metadata=mesh.md())
    assert not none.jobs
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListJobs(S.ListJobsRequest(page_token="garbage!"), metadata=mesh.md())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_runtime_seconds": -5}, "max runtime seconds must be greater than 0, not -5"),
        ({"max_parallel_tasks": -1}, "max parallel tasks must be positive"),
        ({"priority": 5000}, "priority must be between"),
    ],
)
async def test_bad_limits_are_one_clear_line(mesh: Mesh, fields: dict[str, float], message: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create_job(mesh, "bad", **fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")


async def test_backlog_counts_the_tasks_that_want_a_slot(mesh: Mesh) -> None:
    await create_job(mesh, "wants")  # 7 images in tasks of 1, 2, 3, 1: none dispatched (no workers)
    server, port = await serve_backlog("127.0.0.1:0", mesh.scheduler.coordinator.tasks.backlog)
    try:
        status, body = await http_get(port, "/backlog")
        assert status == 200 and json.loads(body) == {"cpu": 0, "gpu": 4, "export": 0}
        status, _ = await http_get(port, "/jobs")
        assert status == 404
        await mesh.scheduler_stub().AbortJob(S.AbortJobRequest(job_id="wants"), metadata=mesh.md())
        assert json.loads((await http_get(port, "/backlog"))[1])["gpu"] == 0
    finally:
        server.close()


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_a_task_nobody_reports_on_is_published_again(mesh: Mesh, nats_client: Client) -> None:
    await create_job(mesh, "lost", max_parallel_tasks=1)
    async with pretend_workers(nats_client, {"gpu": 1}):
        (first,) = await take_tasks(nats_client, "gpu", "lost", 1)  # taken, then never reported
        await asyncio.sleep(1.5)
        await mesh.scheduler.coordinator.requeue_stranded(1.0)
        (again,) = await take_tasks(nats_client, "gpu", "lost", 1)
    assert again.task_id == first.task_id
    logs = await mesh.scheduler_stub().FetchLogs(
        S.FetchLogsRequest(job_id="lost", min_severity=S.LOG_SEVERITY_WARNING), metadata=mesh.md()
    )
    assert any("publishing it again" in r.message for r in logs.records)


async def test_a_redelivery_elsewhere_is_logged(mesh: Mesh, nats_client: Client) -> None:
    await create_job(mesh, "again", max_parallel_tasks=1)
    async with pretend_workers(nats_client, {"gpu": 1}):
        (task,) = await take_tasks(nats_client, "gpu", "again", 1)
        for worker, delivery in (("first", 1), ("second", 2)):  # the first worker died
            message = tasks_pb2.TaskProgress(
                task_id=task.task_id, job_id="again", worker_id=worker, delivery=delivery, attempt=1
            )
            await nats_client.publish(messaging.progress_subject(job_uid(task)), message.SerializeToString())
            await asyncio.sleep(0.5)
    logs = await mesh.scheduler_stub().FetchLogs(S.FetchLogsRequest(job_id="again"), metadata=mesh.md())
    messages = [r.message for r in logs.records]
    assert any("task started on worker first" in m for m in messages), messages
    assert any("redelivered to worker second (delivery 2)" in m for m in messages), messages


STAGE_COUNTERS = (
    "tasks_total, tasks_waiting, tasks_queued, tasks_running, tasks_done, tasks_failed, "
    "tasks_interrupted, items_done, items_failed, "
    "round(machine_s::numeric, 3), round(cpu_s::numeric, 3), round(gpu_s::numeric, 3)"
)
TASKS_SUMMED = ", ".join(
    ["count(t.task_id)"]
    + [
        f"count(t.task_id) FILTER (WHERE t.state = '{state}')"
        for state in ("pending", "queued", "running", "done", "failed", "interrupted")
    ]
    + ["coalesce(sum(t.items_done), 0)", "coalesce(sum(t.items_failed), 0)"]
    + [
        f"round(coalesce(sum({seconds}), 0)::numeric, 3)"
        for seconds in (
            "t.machine_s + t.open_s",
            "t.cpu_s + CASE WHEN t.open_machine = 'gpu' THEN 0 ELSE t.open_s END",
            "t.gpu_s + CASE WHEN t.open_machine = 'gpu' THEN t.open_s ELSE 0 END",
        )
    ]
)


async def counters_match_a_resum(
    mesh: Mesh, job_id: str, until: Callable[[tuple[int, ...]], bool] = lambda processing: True
) -> list[tuple[int, ...]]:
    """The stage rows' kept counters once they equal a sum over the job's tasks and the
    processing stage's satisfy `until` (results are recorded asynchronously)."""
    conn = await asyncpg.connect(mesh.settings.database_url)
    try:
        for _ in range(50):
            kept = await conn.fetch(
                f"SELECT {STAGE_COUNTERS} FROM scheduler.stages WHERE workspace='alpha' AND job_id=$1 "
                "ORDER BY position",
                job_id,
            )
            summed = await conn.fetch(
                f"SELECT {TASKS_SUMMED} FROM scheduler.stages s LEFT JOIN scheduler.tasks t "
                "ON t.workspace=s.workspace AND t.job_id=s.job_id AND t.stage=s.name "
                "WHERE s.workspace='alpha' AND s.job_id=$1 GROUP BY s.position ORDER BY s.position",
                job_id,
            )
            if [tuple(r) for r in kept] == [tuple(r) for r in summed] and until(tuple(kept[0])):
                return [tuple(r) for r in kept]
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise AssertionError(f"stage counters {kept} are not the tasks' sums {summed}")


async def test_stage_counters_stay_the_sum_of_the_tasks_through_abort_and_restart(
    mesh: Mesh, nats_client: Client
) -> None:
    await create_job(mesh, "kept")  # 7 images in tasks of 1, 2, 3, 1
    stub = mesh.scheduler_stub()
    async with pretend_workers(nats_client, {"gpu": 2, "export": 1}):
        first, second = await take_tasks(nats_client, "gpu", "kept", 2)
        await report(nats_client, first)
        await report(nats_client, first)  # a redelivered result counts once
        await progress(nats_client, second, elapsed_s=1.0, done=1)
        third, *_ = await take_tasks(nats_client, "gpu", "kept", 1)
        await report(nats_client, third, failed=3, ok=False)  # the task failed
        # one done, one failed
        await counters_match_a_resum(mesh, "kept", until=lambda processing: processing[4:6] == (1, 1))
        await stub.AbortJob(S.AbortJobRequest(job_id="kept"), metadata=mesh.md())
        processing, _ = await counters_match_a_resum(mesh, "kept")
        assert processing[6] == 2  # the two unfinished ones

        restarted = await stub.RestartJob(S.RestartJobRequest(job_id="kept"), metadata=mesh.md())
        counts = restarted.stages[0].task_counts
        assert counts.waiting + counts.queued == 3  # the failed and interrupted ones run again
        assert restarted.stages[0].items_done == 1  # what the done task did is kept
        await counters_match_a_resum(mesh, "kept")
        await run_tasks(nats_client, "kept", 3)
        (export_task,) = await take_tasks(nats_client, "export", "kept", 1)
        _, export = await counters_match_a_resum(mesh, "kept")
        assert export[0] == 1  # the export task is counted in its stage
        await report(nats_client, export_task)
        done = await job_state(mesh, "kept", S.JOB_STATE_COMPLETED)
    processing, export = await counters_match_a_resum(mesh, "kept")
    assert processing[0] == processing[4] == 4 and processing[7] == 7
    assert processing[9] == processing[10] + processing[11] > 0  # machine time, split by type
    assert export[9] == export[10] + export[11] > 0
    usage = (await stub.GetJob(S.GetJobRequest(job_id="kept"), metadata=mesh.md())).usage
    assert round(usage.gpu_seconds, 3) == float(processing[11] + export[11])
    assert round(usage.cpu_seconds, 3) == float(processing[10] + export[10])
    assert (done.stages[0].tasks_done, done.stages[0].items_done) == (4, 7)
    assert (done.stages[1].tasks_done, done.stages[1].tasks_total) == (1, 1)
