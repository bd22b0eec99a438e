"""Estimates. On the real local stack: a sample of a batch of real photographs runs on the real
worker, and the estimate is within 25 % of the machine time the job then measures; bad requests
are refused. Against the scheduler mesh, the test playing the worker: the estimate follows from
the sample's timings, starts no visible job, counts in usage, and a cancelled call abandons it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import cv2
import numpy as np
import pytest
from nats.aio.client import Client

from sluice import messaging, storage
from sluice.clients import channel, staging_stub, user_metadata
from sluice.stack.state import load_credentials
from sluice.v1 import common_pb2, scheduler_pb2, staging_pb2, tasks_pb2
from tests.images import photographs
from tests.local_stack import local_stack, sluice
from tests.scheduler_mesh import IMAGES, Mesh, job_uid, pretend_workers
from tests.video_fixtures import make_test_video

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "workflows" / "text-detection.json"
PHOTOS = 200
SIZE = (320, 240)
JOB = ["batch-processing", "process-images-with-workflow", "--workflow-id", "text"]


@pytest.fixture(scope="module")
def state() -> Iterator[Path]:
    yield from local_stack("sluice-estimate-")


@pytest.fixture(scope="module")
def photos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 photographs of 320x240: random crops of the real ones, some mirrored."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(8)
    width, height = SIZE
    for i in range(PHOTOS):
        photo = photographs()[i % len(photographs())]
        scale = max(width / photo.shape[1], height / photo.shape[0]) * rng.uniform(1.0, 1.6)
        photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        y = int(rng.integers(0, photo.shape[0] - height + 1))
        x = int(rng.integers(0, photo.shape[1] - width + 1))
        crop = photo[y : y + height, x : x + width]
        cv2.imwrite(str(folder / f"photo-{i:04d}.jpg"), crop[:, ::-1] if i % 2 else crop)
    return folder


@pytest.fixture(scope="module")
def staged(state: Path, photos_dir: Path) -> Path:
    sluice(
        state,
        "data-staging",
        "create-batch-of-images",
        "--images-dir",
        str(photos_dir),
        "--batch-id",
        "photos",
    )
    sluice(state, "workflows", "create", "--workflow-id", "text", "--file", str(WORKFLOW))
    return state


def _seconds(text: str) -> float:
    """'42.0 s', '3.5 min' or '1.20 h' in seconds."""
    value, unit = text.split()
    return float(value) * {"s": 1, "min": 60, "h": 3600}[unit]


def _estimate(state: Path, *args: str) -> dict[str, str]:
    out = sluice(state, *JOB, *args, "--estimate").stdout
    assert "no job was started" in out, out
    return dict(
        re.findall(r"^(sample|sample machine time|machine time|wall time|credits)\s{2,}(.+)$", out, re.M)
    )


def cpu_idle_fraction(window_s: float = 1.0) -> float:
    """How idle the machine's CPUs were over the next `window_s` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait

    total_before, idle_before = sample()
    time.sleep(window_s)
    total_after, idle_after = sample()
    return (idle_after - idle_before) / max(1, total_after - total_before)


def wait_for_a_quiet_machine(idle: float = 0.85, timeout_s: float = 60.0) -> float:
    """A measurement compares two runs, so neither may share the cores with what the tests before
    it left running (a stack stopping, the new stack's services starting): wait until the CPUs
    are mostly idle for a second, or `timeout_s`; returns the idle fraction seen last."""
    deadline = time.monotonic() + timeout_s
    seen = cpu_idle_fraction()
    while seen < idle and time.monotonic() < deadline:
        seen = cpu_idle_fraction()
    return seen


@pytest.mark.e2e
def test_an_estimate_is_within_a_quarter_of_what_the_job_measures(staged: Path) -> None:
    state = staged
    print(f"[estimate] CPUs {wait_for_a_quiet_machine():.0%} idle before the estimate")
    estimate = _estimate(state, "--batch-id", "photos")
    assert estimate["sample"] == f"48 of {PHOTOS} images", estimate  # 16 to warm up, 32 measured
    machine_time, machine_type = re.fullmatch(r"(.+) \((cpu|gpu)\)", estimate["machine time"]).groups()  # type: ignore[union-attr]
    assert machine_type == "cpu"
    expected = _seconds(machine_time)
    wall, slots = re.fullmatch(r"(.+) on (\d+) slots", estimate["wall time"]).groups()  # type: ignore[union-attr]
    assert int(slots) == 2  # `sluice up` starts one cpu worker of 2 slots
    assert 0.45 * expected <= _seconds(wall) <= expected  # 4 tasks of 50 images on 2 slots: half
    assert float(estimate["credits"]) == pytest.approx(expected / 3600, rel=0.02, abs=1e-4)
    assert 0 < _seconds(estimate["sample machine time"]) < expected
    # The estimate started no job anyone sees.
    assert sluice(state, "batch-processing", "list-jobs").stdout.strip() == "no jobs"

    wait_for_a_quiet_machine()
    sluice(state, *JOB, "--batch-id", "photos", "--job-id", "measured", "--wait")
    details = sluice(state, "batch-processing", "show-job-details", "--job-id", "measured").stdout
    measured = float(re.search(r"^machine time\s+([\d.]+) s", details, re.M).group(1))  # type: ignore[union-attr]
    assert "usage" in details and "completed" in details
    print(
        f"[estimate] estimated {expected:.1f} s, the job measured {measured:.1f} s "
        f"({expected / measured:.2f}x), wall {estimate['wall time']}"
    )
    assert abs(expected - measured) <= 0.25 * measured, (estimate, measured)

    # The sample's machine time is usage too, marked as an estimate.
    usage = sluice(state, "usage").stdout
    keys = [line.split()[0] for line in usage.splitlines()[3:]]
    assert len(keys) == 3 and keys[0].startswith("estimate:") and keys[1:] == ["measured", "total"], usage


def _stage_empty_batch(state: Path) -> None:
    credentials = load_credentials(state)
    stub = staging_stub(channel(credentials["staging_address"]))
    stub.CreateBatch(
        staging_pb2.CreateBatchRequest(batch_id="empty", type=common_pb2.BATCH_TYPE_IMAGES),
        metadata=user_metadata(credentials["api_key"]),
    )


async def _expire(state: Path, batch_id: str) -> None:
    """Move staging's idea of the batch's expiry into the past (as the clock passing it would)."""
    port = json.loads((state / "stack.json").read_text())["parts"]["postgres"]["port"]
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/sluice")
    try:
        await conn.execute(
            "UPDATE staging.batches SET expires_at = now() - interval '1 day' WHERE batch_id=$1", batch_id
        )
    finally:
        await conn.close()


@pytest.mark.e2e
async def test_bad_estimates_are_refused_with_one_clear_line(staged: Path, photos_dir: Path) -> None:
    state = staged
    _stage_empty_batch(state)
    sluice(
        state, "data-staging", "create-batch-of-images", "--images-dir", str(photos_dir), "--batch-id", "old"
    )
    await _expire(state, "old")
    cases = [
        (["--batch-id", "missing"], "batch 'missing' not found"),
        (["--batch-id", "empty"], "batch 'empty' is empty"),
        (["--batch-id", "old"], "batch 'old' expired on"),
        (["--batch-id", "photos", "--machine-type", "gpu"], "no gpu worker is running"),
        (
            ["--batch-id", "photos", "--max-image-failure-rate", "2"],
            "max image failure rate must be between 0 and 1",
        ),
    ]
    for args, expected in cases:
        result = sluice(state, *JOB, *args, "--estimate", check=False)
        assert result.returncode == 1, result.stdout + result.stderr
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    listed = sluice(state, "batch-processing", "list-jobs").stdout
    assert "estimate" not in listed


async def _sample_task(nc: Client) -> tasks_pb2.Task:
    """Take the estimate's sample task from the gpu queue, as a worker would."""
    sub = await messaging.task_consumer(nc.jetstream(), "gpu")
    for _ in range(60):
        with contextlib.suppress(TimeoutError):
            for msg in await sub.fetch(1, timeout=0.5):
                task = tasks_pb2.Task.FromString(msg.data)
                await msg.ack()
                if task.job_id.startswith("estimate:"):
                    return task
    raise AssertionError("no sample task arrived")


async def _report(nc: Client, task: tasks_pb2.Task, items: int, elapsed_s: float, *, done: bool) -> None:
    machine = common_pb2.MACHINE_TYPE_GPU
    fields = {"task_id": task.task_id, "job_id": task.job_id, "worker_id": "w", "delivery": 1, "attempt": 1}
    if not done:
        progress = tasks_pb2.TaskProgress(
            **fields, items_done=items, elapsed_s=elapsed_s, machine_type=machine
        )
        await nc.publish(messaging.progress_subject(job_uid(task)), progress.SerializeToString())
        return
    result = tasks_pb2.TaskResult(
        **fields, stage=task.stage, ok=True, items_done=items, duration_s=elapsed_s, machine_type=machine
    )
    await nc.jetstream().publish(messaging.result_subject(job_uid(task)), result.SerializeToString())


def _request() -> scheduler_pb2.CreateJobRequest:
    return scheduler_pb2.CreateJobRequest(
        workflow_id="wf", batch_id="pics", machine_type=common_pb2.MACHINE_TYPE_GPU
    )


async def test_an_estimate_follows_from_the_samples_timings_and_starts_no_job(
    mesh: Mesh, nats_client: Client
) -> None:
    stub = mesh.scheduler_stub()
    async with pretend_workers(nats_client, {"gpu": 2}):
        call = asyncio.ensure_future(stub.EstimateJob(_request(), metadata=mesh.md()))
        warmup = await _sample_task(nats_client)
        # A batch of 7 is sampled whole, as one task after one that warms the worker up.
        assert len(warmup.input_names) == IMAGES and warmup.task_id.endswith("-p00000")
        assert "/.estimates/" in warmup.output_url and warmup.workflow_json
        await _report(nats_client, warmup, IMAGES, 5.0, done=True)  # it paid the start-up
        measured = await _sample_task(nats_client)
        assert len(measured.input_names) == IMAGES and measured.task_id.endswith("-p00001")
        await _report(nats_client, measured, IMAGES, 3.5, done=True)
        estimate = await asyncio.wait_for(call, 30)

    per_item = 3.5 / IMAGES
    assert (estimate.sample_items, estimate.items_total) == (2 * IMAGES, IMAGES)
    assert estimate.sample_machine_seconds == pytest.approx(8.5)
    assert estimate.machine_seconds == pytest.approx(3.5)
    assert estimate.slots == 2  # the live slots; the job would have tasks of 3, 3 and 1 images
    assert estimate.wall_seconds == pytest.approx(per_item * 4)
    assert estimate.credits == pytest.approx(3.5 / 3600 * 4)
    assert estimate.machine_type == common_pb2.MACHINE_TYPE_GPU

    listed = await stub.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=mesh.md())
    assert not listed.jobs
    batches = await mesh.staging_stub().ListBatches(staging_pb2.ListBatchesRequest(), metadata=mesh.md())
    assert [b.batch_id for b in batches.batches] == ["pics"]
    assert not storage.list_objects(storage.join(mesh.settings.store_url, "alpha/.estimates"))
    usage = await stub.GetUsage(scheduler_pb2.GetUsageRequest(), metadata=mesh.md())
    (row,) = usage.rows
    assert row.key == measured.job_id and row.key.startswith("estimate:") and row.usage.gpu_seconds == 8.5


async def test_a_cancelled_estimate_abandons_its_sample(mesh: Mesh, nats_client: Client) -> None:
    stub = mesh.scheduler_stub()
    async with pretend_workers(nats_client, {"gpu": 2}):
        call = stub.EstimateJob(_request(), metadata=mesh.md())
        waiting = asyncio.ensure_future(call)
        task = await _sample_task(nats_client)
        stops = await nats_client.subscribe(messaging.control_subject(job_uid(task)))
        await _report(nats_client, task, 4, 2.0, done=False)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        stop = tasks_pb2.StopTasks.FromString((await stops.next_msg(timeout=10)).data)
    assert stop.job_id == task.job_id

    conn = await asyncpg.connect(mesh.settings.database_url)
    try:
        job = await conn.fetchrow("SELECT state, kind FROM scheduler.jobs WHERE job_id=$1", task.job_id)
        tasks = await conn.fetch("SELECT state FROM scheduler.tasks WHERE job_id=$1", task.job_id)
    finally:
        await conn.close()
    assert (job["state"], job["kind"]) == ("aborted", "estimate")
    assert [t["state"] for t in tasks] == ["interrupted"]


async def test_a_video_estimate_samples_windows_of_frames(
    mesh: Mesh, nats_client: Client, tmp_path: Path
) -> None:
    clip = make_test_video(tmp_path / "clip.mp4", width=64, height=48, fps=10, duration_s=10)
    st = mesh.staging_stub()
    await st.CreateBatch(
        staging_pb2.CreateBatchRequest(batch_id="clips", type=common_pb2.BATCH_TYPE_VIDEOS),
        metadata=mesh.md(),
    )
    chunk = staging_pb2.UploadChunk(batch_id="clips", file_name="clip.mp4", data=clip.read_bytes(), last=True)
    await st.UploadFiles(iter([chunk]), metadata=mesh.md())
    request = scheduler_pb2.CreateJobRequest(
        workflow_id="wf", batch_id="clips", machine_type=common_pb2.MACHINE_TYPE_GPU, max_video_fps=5
    )
    async with pretend_workers(nats_client, {"gpu": 2}):
        call = asyncio.ensure_future(mesh.scheduler_stub().EstimateJob(request, metadata=mesh.md()))
        warmup = await _sample_task(nats_client)
        # The shortest window, 2 s: 10 frames (end_s 0 is the end of the video, for the last one).
        assert warmup.video.frames_total == 10
        assert warmup.video.end_s in (0.0, pytest.approx(warmup.video.start_s + 2.0))
        await _report(nats_client, warmup, 10, 3.0, done=True)
        measured = await _sample_task(nats_client)
        window = measured.video
        # 32 frames at 5 frames/s: windows of 6.4 s, [0, 6.4) or the rest of the 10 s (18 frames)
        assert (window.name, window.max_fps, window.warmup_start_s) == ("clip.mp4", 5.0, window.start_s)
        assert (window.start_s, window.frames_total) in ((0.0, 32), (6.4, 18)) and measured.video_job
        await _report(nats_client, measured, window.frames_total, window.frames_total * 0.1, done=True)
        estimate = await asyncio.wait_for(call, 30)

    assert (estimate.sample_items, estimate.items_total) == (10 + window.frames_total, 50)
    assert estimate.machine_seconds == pytest.approx(50 * 0.1)
    assert estimate.slots == 1  # one video shorter than a segment: one task
    assert estimate.wall_seconds == pytest.approx(50 * 0.1)
