"""The worker, run for real against NATS JetStream and a local object store.

Each test publishes tasks the way the scheduler does and reads back what the worker left: the
result object, the TaskResult on sluice.results.<job>, annotated images and the task's ack.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import cv2
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.aio.client import Client
from nats.js import JetStreamContext

from sluice import storage
from sluice.config import Settings
from sluice.messaging import (
    ROLL_CALL_SUBJECT,
    TASKS_STREAM,
    connect,
    ensure_streams,
    heartbeat_subject,
    result_subject,
    task_consumer_name,
    task_subject,
)
from sluice.models.backends.current import get_backend, set_backend
from sluice.models.backends.onnxruntime_backend import OnnxRuntimeBackend
from sluice.models.spec import ModelSpec
from sluice.runtime import usable_cpus
from sluice.stack.nats_process import NatsServer
from sluice.v1 import common_pb2, tasks_pb2
from sluice_exporter.service import ExportService
from sluice_worker.options import WorkerOptions
from sluice_worker.pace import BATCH_WHEN_UNDER_S, FAST_BATCH, UNBATCH_WHEN_OVER_S, Pace, WorkflowPaces
from sluice_worker.processing import GROUP_S, MAX_GROUP, next_group_size
from sluice_worker.worker import Worker
from tests.model_fixtures import photo

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "workflows" / "text-detection.json"
FAST = {"fetch_timeout_s": 0.5, "heartbeat_s": 0.2, "nak_delay_s": 0.05, "drain_timeout_s": 20.0}


def _encode(image: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


def _png_header(width: int, height: int) -> bytes:
    """The start of a PNG claiming `width` x `height` pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


def _inputs() -> dict[str, bytes | None]:
    """Input objects by name, in task order (None: named in the task but never staged)."""
    coffee_jpg = _encode(photo("coffee.png"), ".jpg")
    return {
        "astronaut.png": _encode(photo("astronaut.png"), ".png"),
        "coffee.jpg": coffee_jpg,
        "corrupt.jpg": coffee_jpg[: len(coffee_jpg) // 3],
        "empty.jpg": b"",
        "page.png": _encode(photo("page.png"), ".png"),
        "notes.jpg": b"these are my notes, not a picture\n",
        "huge.png": _png_header(10_000, 6_000),
        "missing.jpg": None,
        "scans/rocket.jpg": _encode(photo("rocket.jpg"), ".jpg"),
    }


EXPECTED_ERRORS = {
    "corrupt.jpg": "cannot decode image (not a supported image or corrupt)",
    "empty.jpg": "empty file",
    "notes.jpg": "cannot decode image (not a supported image or corrupt)",
    "huge.png": "image too large (10000x6000 pixels; the limit is 50 megapixels)",
    "missing.jpg": "input object not found",
}
ANNOTATED = {
    "astronaut.png": "images/astronaut.png.annotated.jpg",
    "coffee.jpg": "images/coffee.jpg.annotated.jpg",
    "page.png": "images/page.png.annotated.jpg",
    "scans/rocket.jpg": "images/scans/rocket.jpg.annotated.jpg",
}


@pytest.fixture
def worker_settings(nats_server: NatsServer, store_url: str) -> Settings:
    return Settings(nats_url=nats_server.url, store_url=store_url)


@pytest.fixture
async def nats_js(nats_server: NatsServer) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    nc = await connect(nats_server.url, "test-worker")
    js = nc.jetstream()
    await ensure_streams(js)
    # Tasks other tests left for cpu workers would be picked up by the worker under test.
    await js.purge_stream(TASKS_STREAM, subject="sluice.tasks.cpu.>")
    yield nc, js
    await nc.close()


@pytest.fixture
def batch_urls(store_url: str) -> tuple[str, str]:
    """(input batch URL, output batch URL), with the test inputs staged."""
    input_url = storage.join(store_url, "alpha/in-batch")
    for name, data in _inputs().items():
        if data is not None:
            storage.write_bytes(input_url, name, data)
    return input_url, storage.join(store_url, "alpha/out-batch")


def _task(input_url: str, output_url: str, job_id: str, **fields: Any) -> tasks_pb2.Task:
    values: dict[str, Any] = {
        "task_id": f"{job_id}-t0",
        "job_id": job_id,
        "workspace": "alpha",
        "stage": "processing",
        "input_names": list(_inputs()),
        "input_url": input_url,
        "output_url": output_url,
        "workflow_json": EXAMPLE.read_text(),
        "save_image_outputs": True,
        "machine_type": common_pb2.MACHINE_TYPE_CPU,
    }
    values.update(fields)
    return tasks_pb2.Task(**values)


@asynccontextmanager
async def running_worker(settings: Settings, **options: Any) -> AsyncIterator[Worker]:
    stop = asyncio.Event()
    worker = Worker(settings, WorkerOptions(**{"worker_id": "test-worker", **FAST, **options}))
    running = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)


class Results:
    """TaskResults published for one job (a core subscription sees JetStream publishes too)."""

    def __init__(self, nc: Client, job_id: str) -> None:
        self._nc, self._subject = nc, result_subject(job_id)
        self._sub: Any = None

    async def __aenter__(self) -> Results:
        self._sub = await self._nc.subscribe(self._subject)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._sub.unsubscribe()

    async def next(self, timeout: float = 90) -> tasks_pb2.TaskResult:
        msg = await self._sub.next_msg(timeout=timeout)
        return tasks_pb2.TaskResult.FromString(msg.data)


def _records(output_url: str, task_id: str) -> list[dict[str, Any]]:
    data = storage.read_bytes(output_url, f"results/{task_id}.jsonl")
    return [json.loads(line) for line in data.decode().splitlines()]


async def _task_settled(js: JetStreamContext) -> None:
    """Wait until the cpu consumer holds no unacknowledged or waiting task."""
    for _ in range(100):
        info = await js.consumer_info(TASKS_STREAM, task_consumer_name("cpu"))
        if info.num_ack_pending == 0 and info.num_pending == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"task not settled: {info}")


def _job() -> str:
    return "job-" + secrets.token_hex(4)


async def test_a_task_becomes_one_result_object_with_a_line_per_image(
    worker_settings: Settings, nats_js: tuple[Client, JetStreamContext], batch_urls: tuple[str, str]
) -> None:
    nc, js = nats_js
    input_url, output_url = batch_urls
    job = _job()
    task = _task(input_url, output_url, job)
    async with Results(nc, job) as results, running_worker(worker_settings):
        await js.publish(task_subject("cpu", job), task.SerializeToString())
        result = await results.next()
        await _task_settled(js)

    assert result.ok and not result.error
    assert (result.task_id, result.job_id, result.stage) == (task.task_id, job, "processing")
    assert (result.items_done, result.items_failed) == (9, 5)
    assert result.worker_id == "test-worker" and result.duration_s > 0
    assert result.machine_type == common_pb2.MACHINE_TYPE_CPU

    records = _records(output_url, task.task_id)
    assert [r["image"] for r in records] == list(_inputs())
    for record in records:
        assert record["task_id"] == task.task_id
        if record["image"] in EXPECTED_ERRORS:
            assert record["status"] == "error"
            assert record["error"] == EXPECTED_ERRORS[record["image"]]
            assert record["outputs"] == {} and record["image_outputs"] == {}
            continue
        assert record["status"] == "ok" and record["error"] is None
        assert set(record["outputs"]) == {"predictions"}
        assert record["image_outputs"] == {"annotated": ANNOTATED[record["image"]]}
        annotated = cv2.imdecode(
            np.frombuffer(storage.read_bytes(output_url, ANNOTATED[record["image"]]), np.uint8),
            cv2.IMREAD_COLOR,
        )
        size = record["outputs"]["predictions"]["image"]
        assert annotated is not None and annotated.shape == (size["height"], size["width"], 3)
    page = next(r for r in records if r["image"] == "page.png")
    assert page["outputs"]["predictions"]["image"] == {"width": 384, "height": 191}
    predictions = page["outputs"]["predictions"]["predictions"]
    assert 4 <= len(predictions) <= 10
    assert {p["class"] for p in predictions} == {"text"}

    objects = storage.list_objects(output_url)
    assert sorted(objects) == sorted([f"results/{task.task_id}.jsonl", *ANNOTATED.values()])


async def test_running_a_task_twice_overwrites_its_outputs(
    worker_settings: Settings, nats_js: tuple[Client, JetStreamContext], batch_urls: tuple[str, str]
) -> None:
    nc, js = nats_js
    input_url, output_url = batch_urls
    job = _job()
    task = _task(input_url, output_url, job)
    async with Results(nc, job) as results, running_worker(worker_settings):
        for _ in range(2):
            await js.publish(task_subject("cpu", job), task.SerializeToString())
        first, second = await results.next(), await results.next()
    assert first.ok and second.ok and first.task_id == second.task_id
    objects = storage.list_objects(output_url)
    assert sorted(objects) == sorted([f"results/{task.task_id}.jsonl", *ANNOTATED.values()])
    assert len(_records(output_url, task.task_id)) == 9


async def test_image_outputs_are_only_saved_when_asked(
    worker_settings: Settings, nats_js: tuple[Client, JetStreamContext], batch_urls: tuple[str, str]
) -> None:
    nc, js = nats_js
    input_url, output_url = batch_urls
    job = _job()
    task = _task(input_url, output_url, job, save_image_outputs=False, input_names=["page.png"])
    async with Results(nc, job) as results, running_worker(worker_settings, slots=1):
        await js.publish(task_subject("cpu", job), task.SerializeToString())
        assert (await results.next()).ok
    (record,) = _records(output_url, task.task_id)
    assert record["status"] == "ok" and record["image_outputs"] == {}
    assert list(storage.list_objects(output_url)) == [f"results/{task.task_id}.jsonl"]


async def test_tasks_that_cannot_succeed_fail_without_retries(
    worker_settings: Settings, nats_js: tuple[Client, JetStreamContext], batch_urls: tuple[str, str]
) -> None:
    nc, js = nats_js
    input_url, output_url = batch_urls
    bad_workflow, garbage = _job(), _job()
    custom_python = json.dumps(
        {
            **json.loads(EXAMPLE.read_text()),
            "steps": [{"type": "roboflow_core/custom_python@v1", "name": "x"}],
        }
    )
    task = _task(input_url, output_url, bad_workflow, workflow_json=custom_python)
    async with (
        Results(nc, bad_workflow) as bad,
        Results(nc, garbage) as unparsable,
        running_worker(worker_settings),
    ):
        await js.publish(task_subject("cpu", bad_workflow), task.SerializeToString())
        await js.publish(task_subject("cpu", garbage), b"\xff\xff\xff not a task")
        refused, broken = await bad.next(), await unparsable.next()
        await _task_settled(js)
    assert not refused.ok and refused.task_id == task.task_id
    assert refused.error.startswith(
        "invalid workflow: step 'x': block 'roboflow_core/custom_python@v1' is refused"
    )
    assert not broken.ok and broken.job_id == garbage and broken.error.startswith("cannot parse task")
    assert storage.list_objects(output_url) == {}


async def test_store_failures_are_retried_then_reported(
    worker_settings: Settings,
    nats_js: tuple[Client, JetStreamContext],
    batch_urls: tuple[str, str],
    tmp_path: Path,
) -> None:
    nc, js = nats_js
    input_url, _ = batch_urls
    blocker = tmp_path / "a-file"
    blocker.write_text("the output batch cannot be created under a file")
    job = _job()
    task = _task(input_url, f"file://{blocker}/out", job, input_names=["page.png"])
    async with Results(nc, job) as results, running_worker(worker_settings):
        await js.publish(task_subject("cpu", job), task.SerializeToString())
        result = await results.next()
        await _task_settled(js)
    assert not result.ok
    assert result.error.startswith("object store error") and result.error.endswith("(after 5 attempts)")


async def test_heartbeats_say_which_machine_type_is_served(
    worker_settings: Settings, nats_js: tuple[Client, JetStreamContext]
) -> None:
    nc, _ = nats_js
    sub = await nc.subscribe(heartbeat_subject("cpu"))
    async with running_worker(worker_settings, slots=3, worker_id="beating"):
        for _ in range(20):
            beat = tasks_pb2.WorkerHeartbeat.FromString((await sub.next_msg(timeout=5)).data)
            if beat.worker_id == "beating":
                break
    await sub.unsubscribe()
    assert beat.worker_id == "beating" and beat.slots == 3 and beat.busy_slots == 0
    assert beat.machine_type == common_pb2.MACHINE_TYPE_CPU


async def test_workers_and_exporters_answer_a_roll_call_at_once(
    worker_settings: Settings, nats_js: tuple[Client, JetStreamContext]
) -> None:
    """A scheduler that starts asks every worker for a heartbeat now (sluice.roll-call), so it
    learns of their slots at once instead of a heartbeat interval later (here a minute)."""
    nc, _ = nats_js
    beats: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def on_beat(msg: Any) -> None:
        await beats.put((msg.subject, tasks_pb2.WorkerHeartbeat.FromString(msg.data).worker_id))

    sub = await nc.subscribe("sluice.workers.*", cb=on_beat)
    stop = asyncio.Event()
    exporter = ExportService(nc, slots=1, worker_id="called-exporter", heartbeat_interval_s=60)
    exporting = asyncio.create_task(exporter.run(stop))
    try:
        async with running_worker(worker_settings, worker_id="called", heartbeat_s=60):
            wanted = {(heartbeat_subject("cpu"), "called"), (heartbeat_subject("export"), "called-exporter")}
            started = set()
            while started != wanted:  # each beats once as it starts, then not for a minute
                started.add(await asyncio.wait_for(beats.get(), 30))
            await nc.publish(ROLL_CALL_SUBJECT, b"")
            heard = set()
            while heard != wanted:
                heard.add(await asyncio.wait_for(beats.get(), 5))
    finally:
        stop.set()
        await asyncio.wait_for(exporting, 15)
        await sub.unsubscribe()


async def test_stopping_finishes_the_task_in_hand(
    worker_settings: Settings, nats_js: tuple[Client, JetStreamContext], batch_urls: tuple[str, str]
) -> None:
    nc, js = nats_js
    input_url, output_url = batch_urls
    names = [f"pages/{i}.png" for i in range(24)]
    page = _encode(photo("page.png"), ".png")
    for name in names:
        storage.write_bytes(input_url, name, page)
    job = _job()
    task = _task(input_url, output_url, job, input_names=names, save_image_outputs=False)
    async with Results(nc, job) as results:
        async with running_worker(worker_settings, slots=1, batch_size=2) as worker:
            await js.publish(task_subject("cpu", job), task.SerializeToString())
            for _ in range(200):
                if worker.busy_slots:
                    break
                await asyncio.sleep(0.05)
            assert worker.busy_slots == 1
        # Leaving the block stopped the worker; it finished the task before returning.
        result = await results.next(timeout=5)
    assert result.ok and result.items_done == 24 and result.items_failed == 0
    await _task_settled(js)


async def test_a_task_still_running_when_the_drain_times_out_goes_back_to_the_queue(
    worker_settings: Settings, nats_js: tuple[Client, JetStreamContext], batch_urls: tuple[str, str]
) -> None:
    nc, js = nats_js
    input_url, output_url = batch_urls
    names = [f"pages/{i}.png" for i in range(16)]
    page = _encode(photo("page.png"), ".png")
    for name in names:
        storage.write_bytes(input_url, name, page)
    job = _job()
    task = _task(input_url, output_url, job, input_names=names, save_image_outputs=False)
    async with Results(nc, job) as results:
        async with running_worker(worker_settings, slots=1, batch_size=1, drain_timeout_s=0.1) as first:
            await js.publish(task_subject("cpu", job), task.SerializeToString())
            for _ in range(200):
                if first.busy_slots:
                    break
                await asyncio.sleep(0.05)
            assert first.busy_slots == 1
        with pytest.raises(TimeoutError):
            await results.next(timeout=0.5)  # the first worker handed the task back unfinished
        async with running_worker(worker_settings, worker_id="second"):
            result = await results.next()
    assert result.ok and result.worker_id == "second" and result.items_done == 16
    assert len(_records(output_url, task.task_id)) == 16


class ShapesBackend:
    """ONNX Runtime underneath; remembers the shape of every batch a model is called with."""

    name = "shapes"

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self._inner = OnnxRuntimeBackend(1)

    def run(self, spec: ModelSpec, batch: np.ndarray) -> list[np.ndarray]:
        self.shapes.append(tuple(batch.shape))
        return self._inner.run(spec, batch)


@pytest.fixture
def shapes_backend() -> Iterator[ShapesBackend]:
    """The process's backend, for the in-process worker, while the test runs."""
    previous = get_backend()
    backend = ShapesBackend()
    set_backend(backend)
    yield backend
    set_backend(previous)


async def test_a_slot_runs_each_batch_of_a_task_as_one_model_call(
    worker_settings: Settings,
    nats_js: tuple[Client, JetStreamContext],
    batch_urls: tuple[str, str],
    shapes_backend: ShapesBackend,
) -> None:
    """Two tasks at once on two slots, batch size 4: each task's images reach the model four at
    a time, and a task's last, smaller batch runs at once instead of waiting to be filled with
    the other task's images. (Their photographs differ in shape, which tells their calls apart.)"""
    nc, js = nats_js
    input_url, output_url = batch_urls
    # Its own workflow text, so no workflow compiled (with another backend) by an earlier test is reused.
    workflow = EXAMPLE.read_text().replace('"default_value": 0.4', '"default_value": 0.45')
    assert workflow != EXAMPLE.read_text()
    jobs = {"page.png": (_job(), 6), "coffee.png": (_job(), 5)}
    tasks = []
    for picture, (job, count) in jobs.items():
        names = [f"{job}/{i}.png" for i in range(count)]
        for name in names:
            storage.write_bytes(input_url, name, _encode(photo(picture), ".png"))
        tasks.append(
            _task(
                input_url,
                output_url,
                job,
                input_names=names,
                workflow_json=workflow,
                save_image_outputs=False,
            )
        )
    async with (
        Results(nc, tasks[0].job_id) as pages,
        Results(nc, tasks[1].job_id) as coffees,
        running_worker(worker_settings, slots=2, batch_size=4),
    ):
        for task in tasks:
            await js.publish(task_subject("cpu", task.job_id), task.SerializeToString())
        done = [await pages.next(), await coffees.next()]
    assert [(r.ok, r.items_done, r.items_failed) for r in done] == [(True, 6, 0), (True, 5, 0)]
    batches: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for shape in shapes_backend.shapes:
        batches[shape[1:]].append(shape[0])
    assert sorted(batches.values()) == [[4, 1], [4, 2]], shapes_backend.shapes


class TimedBackend:
    """A model of a set speed: `per_image_s` a image, scores of zeros; remembers its batch sizes."""

    name = "timed"

    def __init__(self, per_image_s: float) -> None:
        self.per_image_s = per_image_s
        self.batches: list[int] = []

    def run(self, spec: ModelSpec, batch: np.ndarray) -> list[np.ndarray]:
        time.sleep(self.per_image_s * len(batch))
        self.batches.append(len(batch))
        return [np.zeros((len(batch), len(spec.class_names)), np.float32)]


def _orientation_workflow(salt: str) -> str:
    """One classification step on the built-in orientation model; `salt` makes its text (and so
    its compiled form) this test's own."""
    return json.dumps(
        {
            "version": "1.0",
            "inputs": [{"type": "WorkflowImage", "name": "image"}],
            "steps": [
                {
                    "type": "sluice/classification_model@v1",
                    "name": f"orientation_{salt}",
                    "image": "$inputs.image",
                    "model_id": "sluice/orientation",
                }
            ],
            "outputs": [
                {
                    "type": "JsonField",
                    "name": "predictions",
                    "selector": f"$steps.orientation_{salt}.predictions",
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("per_image_s", "second_task"),
    [(0.0, [8, 8, 4]), (0.005, [1] * 20)],
    ids=["near-free model: 8 a call", "5 ms an image: 1 a call"],
)
async def test_the_default_batch_follows_how_long_a_workflows_images_take(
    worker_settings: Settings,
    nats_js: tuple[Client, JetStreamContext],
    batch_urls: tuple[str, str],
    per_image_s: float,
    second_task: list[int],
) -> None:
    """With no --batch-size a cpu worker runs a workflow's first task one image per call; a
    workflow whose images took under 2 ms each then runs eight a call, a slower one stays at one.
    The records are the same either way: one per image, every one ok."""
    nc, js = nats_js
    input_url, output_url = batch_urls
    job = _job()
    names = [f"{job}/{i:02d}.png" for i in range(20)]
    for name in names:
        storage.write_bytes(input_url, name, _encode(photo("coffee.png")[:64, :64], ".png"))
    workflow = _orientation_workflow(job.replace("-", "_"))
    tasks = [
        _task(input_url, output_url, job, task_id=f"{job}-t{i}", input_names=names, workflow_json=workflow)
        for i in range(2)
    ]
    previous = get_backend()
    backend = TimedBackend(per_image_s)
    set_backend(backend)
    try:
        async with Results(nc, job) as results, running_worker(worker_settings, slots=1) as worker:
            assert worker.options.adaptive_batch
            done = []
            for task in tasks:
                await js.publish(task_subject("cpu", job), task.SerializeToString())
                done.append(await results.next())
    finally:
        set_backend(previous)
    assert [(r.ok, r.items_done, r.items_failed) for r in done] == [(True, 20, 0)] * 2
    assert backend.batches[:20] == [1] * 20 and backend.batches[20:] == second_task
    for task in tasks:
        records = _records(output_url, task.task_id)
        assert [r["image"] for r in records] == names and all(r["status"] == "ok" for r in records)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _serving(address: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def test_the_worker_process_serves_health_and_stops_on_sigterm(
    worker_settings: Settings,
    nats_js: tuple[Client, JetStreamContext],
    batch_urls: tuple[str, str],
    tmp_path: Path,
) -> None:
    nc, js = nats_js
    input_url, output_url = batch_urls
    address = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, **worker_settings.to_env()}
    command = [sys.executable, "-m", "sluice_worker", "--health-address", address,
               "--machine-type", "cpu", "--workers-per-machine", "2", "--batch-size", "3",
               "--worker-id", "process-worker"]  # fmt: skip
    log_file = tmp_path / "worker.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            if await _serving(address):
                break
            assert process.poll() is None, log_file.read_text()
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the worker never reported SERVING")
        job = _job()
        task = _task(input_url, output_url, job, input_names=["coffee.jpg", "empty.jpg"])
        async with Results(nc, job) as results:
            await js.publish(task_subject("cpu", job), task.SerializeToString())
            result = await results.next()
        assert result.ok and result.worker_id == "process-worker"
        assert (result.items_done, result.items_failed) == (2, 1)
        # Without --ort-threads the worker shares the usable CPUs among its two slots.
        cpus = usable_cpus()
        chosen = f"ort threads {max(1, cpus // 2)} per session ({cpus} usable cpus, 2 slots)"
        assert chosen in log_file.read_text()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0, log_file.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not await _serving(address)


def test_groups_grow_for_light_models_and_stay_one_batch_for_heavy_ones() -> None:
    """A slot hops to a thread once per group of batches: one batch when a batch takes longer
    than GROUP_S (a detector), doubling towards GROUP_S of work for a near-free model, never
    past MAX_GROUP images, and always whole batches."""
    assert next_group_size(4, 4, elapsed_s=0.8) == 4  # 0.2 s an image
    sizes = [8]
    for _ in range(8):
        sizes.append(next_group_size(sizes[-1], 8, elapsed_s=sizes[-1] * 0.0001))  # 0.1 ms an image
    assert sizes[:4] == [8, 16, 32, 64] and max(sizes) <= MAX_GROUP
    assert all(size % 8 == 0 for size in sizes)
    assert next_group_size(64, 1, elapsed_s=64 * 0.001) == int(GROUP_S / 0.001)  # 1 ms an image: 50
    assert next_group_size(3, 5, elapsed_s=0.0) == 5  # at least one batch


def test_a_workflow_near_the_threshold_keeps_its_batch_and_a_given_batch_is_kept() -> None:
    """Batched for being fast, a workflow goes back to one image a call only past twice the
    threshold (so it does not flip at every task); a batch size the worker was given never moves."""
    paces = WorkflowPaces(batch_size=1, adaptive=True)
    assert paces.get("wf") == Pace(1)
    assert paces.learn("wf", 16, BATCH_WHEN_UNDER_S / 2).batch_size == FAST_BATCH
    assert paces.learn("wf", 16, BATCH_WHEN_UNDER_S * 1.5).batch_size == FAST_BATCH
    assert paces.learn("wf", 8, None) == Pace(FAST_BATCH, 8)  # no image ran: nothing learned
    assert paces.learn("wf", 8, UNBATCH_WHEN_OVER_S * 1.5).batch_size == 1
    assert paces.learn("wf", 8, BATCH_WHEN_UNDER_S * 1.5).batch_size == 1
    assert paces.get("other") == Pace(1)
    given = WorkflowPaces(batch_size=4, adaptive=False)
    assert given.learn("wf", 4, 0.0) == Pace(4, 4)
    assert given.learn("wf", 4, 1.0) == Pace(4, 4)
