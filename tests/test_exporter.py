"""The exporter: aggregation, archive splitting, one export against a folder, and the NATS loop."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import secrets
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from sluice import messaging, storage
from sluice.stack.nats_process import NatsServer
from sluice.v1 import common_pb2, tasks_pb2
from sluice_exporter import __main__ as exporter_main
from sluice_exporter.aggregate import (
    CSV_NAME,
    JSONL_NAME,
    aggregate,
    collapse,
    csv_columns,
    parse_records,
)
from sluice_exporter.archive import (
    DEFAULT_MAX_ARCHIVE_BYTES,
    Member,
    archive_index,
    archive_name,
    effective_limit,
    pack,
    plan_archives,
)
from sluice_exporter.export import export_job
from sluice_exporter.service import ExportService, InvalidTask, job_from_subject, parse_task

# ---------------------------------------------------------------------------------------------
# Helpers


def record(
    image: str,
    status: str = "ok",
    task_id: str = "t1",
    outputs: dict[str, Any] | None = None,
    image_outputs: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "image": image,
        "task_id": task_id,
        "status": status,
        "error": None if status == "ok" else "cannot decode image",
        "outputs": outputs if outputs is not None else {},
        "image_outputs": image_outputs if image_outputs is not None else {},
    }


def jsonl(*records: dict[str, Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def jpeg(seed: int, size: int = 64) -> bytes:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return bytes(encoded.tobytes())


def unpack_all(folder: Path) -> dict[str, list[bytes]]:
    """Every member of every export-*.tar.gz in `folder`, by path, with each copy's bytes."""
    members: dict[str, list[bytes]] = {}
    for archive in sorted(folder.glob("export-*.tar.gz")):
        with tarfile.open(archive, "r:gz") as tar:
            for info in tar.getmembers():
                extracted = tar.extractfile(info)
                assert extracted is not None
                members.setdefault(info.name, []).append(extracted.read())
    return members


def write_fake_processing(folder_url: str) -> dict[str, bytes]:
    """Worker output for 5 images in 3 tasks (one image ran twice); returns the image objects."""
    images: dict[str, bytes] = {}
    for index, name in enumerate(["a.jpg", "b.jpg", "c.png", "d.jpg"]):
        stem = name.rsplit(".", 1)[0]
        images[f"images/{stem}.annotated.jpg"] = jpeg(index)
    for name, data in images.items():
        storage.write_bytes(folder_url, name, data)

    def ok(image: str, task_id: str, count: int) -> dict[str, Any]:
        stem = image.rsplit(".", 1)[0]
        return record(
            image,
            task_id=task_id,
            outputs={"predictions": {"detections": count}, "count": count},
            image_outputs={"annotated": f"images/{stem}.annotated.jpg"},
        )

    storage.write_bytes(
        folder_url,
        "results/t1.jsonl",
        jsonl(ok("d.jpg", "t1", 4), ok("a.jpg", "t1", 1), record("e.jpg", "error", "t1")),
    )
    storage.write_bytes(folder_url, "results/t2.jsonl", jsonl(ok("c.png", "t2", 3)))
    # t3 is a rerun of part of t1 and t2 under another id: a.jpg failed this time, b.jpg is new.
    storage.write_bytes(
        folder_url,
        "results/t3.jsonl",
        jsonl(record("a.jpg", "error", "t3"), ok("b.jpg", "t3", 2)),
    )
    # Neither a result object nor an image: never exported.
    storage.write_bytes(folder_url, "notes.txt", b"not part of the export")
    return images


# ---------------------------------------------------------------------------------------------
# Aggregation


def test_parse_records_skips_blank_unparsable_and_nameless_lines() -> None:
    data = b'{"image": "a.jpg", "status": "ok"}\n\nnot json\n{"status": "ok"}\n[1, 2]\n'
    assert parse_records(data, "results/t1.jsonl") == [{"image": "a.jpg", "status": "ok"}]


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([record("b"), record("a")], [("a", "ok"), ("b", "ok")]),
        ([record("a", "error", "t1"), record("a", "ok", "t2")], [("a", "ok")]),
        ([record("a", "ok", "t1"), record("a", "error", "t2")], [("a", "ok")]),
        ([record("a", "error", "t1"), record("a", "error", "t2")], [("a", "error")]),
        ([], []),
    ],
)
def test_collapse_keeps_one_record_per_image_sorted(
    records: list[dict[str, Any]], expected: list[tuple[str, str]]
) -> None:
    assert [(r["image"], r["status"]) for r in collapse(records)] == expected


def test_collapse_prefers_the_first_of_equals() -> None:
    kept = collapse([record("a", "error", "t1"), record("a", "error", "t2")])
    assert kept[0]["task_id"] == "t1"


def test_aggregate_jsonl_sorted_one_line_per_image_as_is() -> None:
    records = [
        record("c.jpg", outputs={"predictions": {"boxes": [[1, 2, 3, 4]]}}),
        record("a.jpg", "error", "t1"),
        record("b.jpg"),
        record("a.jpg", "ok", "t2", outputs={"count": 1}),
    ]
    result = aggregate(records, common_pb2.AGGREGATION_FORMAT_JSONL)
    assert result.name == JSONL_NAME
    assert (result.records, result.failed) == (3, 0)
    lines = [json.loads(line) for line in result.data.decode().splitlines()]
    assert [line["image"] for line in lines] == ["a.jpg", "b.jpg", "c.jpg"]
    assert lines[0] == records[3]
    assert lines[2] == records[0]


def test_aggregate_unspecified_format_is_jsonl() -> None:
    result = aggregate([record("a")], common_pb2.AGGREGATION_FORMAT_UNSPECIFIED)
    assert result.name == JSONL_NAME


def test_aggregate_csv_columns_and_cells() -> None:
    records = [
        record(
            "b.jpg",
            outputs={"predictions": {"n": 2}, "label": "cat"},
            image_outputs={"annotated": "images/b.annotated.jpg"},
        ),
        record("a.jpg", "error"),
        record("c.jpg", outputs={"count": 3}, image_outputs={"crop": "images/c.crop.jpg"}),
        record("b.jpg", "error", "t9"),
    ]
    result = aggregate(records, common_pb2.AGGREGATION_FORMAT_CSV)
    assert result.name == CSV_NAME
    assert (result.records, result.failed) == (3, 1)
    rows = list(csv.reader(io.StringIO(result.data.decode())))
    assert rows[0] == [
        "image",
        "status",
        "error",
        "count",
        "label",
        "predictions",
        "annotated",
        "crop",
    ]
    by_image = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert [row[0] for row in rows[1:]] == ["a.jpg", "b.jpg", "c.jpg"]
    assert by_image["a.jpg"]["status"] == "error"
    assert by_image["a.jpg"]["error"] == "cannot decode image"
    assert by_image["a.jpg"]["predictions"] == ""
    assert by_image["b.jpg"]["error"] == ""
    assert json.loads(by_image["b.jpg"]["predictions"]) == {"n": 2}
    assert json.loads(by_image["b.jpg"]["label"]) == "cat"
    assert by_image["b.jpg"]["annotated"] == "images/b.annotated.jpg"
    assert by_image["b.jpg"]["crop"] == ""
    assert json.loads(by_image["c.jpg"]["count"]) == 3
    assert by_image["c.jpg"]["crop"] == "images/c.crop.jpg"


def test_csv_columns_never_repeat_a_header() -> None:
    columns = csv_columns(
        [record("a", outputs={"mask": 1, "status": 2}, image_outputs={"mask": "images/a.m.jpg"})]
    )
    assert [(c.header, c.name, c.image) for c in columns] == [
        ("mask", "mask", False),
        ("status_output", "status", False),
        ("mask_image", "mask", True),
    ]


# ---------------------------------------------------------------------------------------------
# Archives


@pytest.mark.parametrize(
    ("sizes", "limit", "expected"),
    [
        ([], 10, []),
        ([3, 3, 3], 10, [[3, 3, 3]]),
        ([4, 4, 4], 10, [[4, 4], [4]]),
        ([5, 5, 5, 5], 10, [[5, 5], [5, 5]]),
        ([25, 1, 1], 10, [[25], [1, 1]]),
        ([1, 25, 1], 10, [[1], [25], [1]]),
        ([10, 10], 10, [[10], [10]]),
        ([0, 0, 10], 10, [[0, 0, 10]]),
    ],
)
def test_plan_archives(sizes: list[int], limit: int, expected: list[list[int]]) -> None:
    members = [Member(f"f{i}", size) for i, size in enumerate(sizes)]
    groups = plan_archives(members, limit)
    assert [[m.size for m in group] for group in groups] == expected
    assert [m for group in groups for m in group] == members


def test_archive_names_and_limits() -> None:
    assert archive_name(0) == "export-00000.tar.gz"
    assert archive_name(12) == "export-00012.tar.gz"
    assert archive_index("export-00012.tar.gz") == 12
    assert archive_index("export-00012.tar.gz.tmp-1234") is None
    assert archive_index("results.jsonl") is None
    assert effective_limit(0) == DEFAULT_MAX_ARCHIVE_BYTES == 512 * 1024 * 1024
    assert effective_limit(1000) == 1000


def test_pack_round_trip(tmp_path: Path) -> None:
    files = {"results.jsonl": b'{"image": "a"}\n', "images/a.annotated.jpg": jpeg(1)}
    data = pack([Member(name, len(b)) for name, b in files.items()], files.__getitem__)
    (tmp_path / "export-00000.tar.gz").write_bytes(data)
    assert unpack_all(tmp_path) == {name: [b] for name, b in files.items()}


# ---------------------------------------------------------------------------------------------
# One export against a folder


def test_export_job_splits_into_archives_that_reconstruct_everything(store_url: str, tmp_path: Path) -> None:
    processing = storage.join(store_url, "alpha/job1-processing")
    export = storage.join(store_url, "alpha/job1-export")
    images = write_fake_processing(processing)
    largest = max(len(data) for data in images.values())

    summary = export_job(processing, export, common_pb2.AGGREGATION_FORMAT_JSONL, largest + 10)

    assert (summary.records, summary.failed, summary.images) == (5, 1, 4)
    export_folder = tmp_path / "objects/alpha/job1-export"
    assert len(summary.archives) >= 3
    assert sorted(p.name for p in export_folder.iterdir()) == summary.archives
    members = unpack_all(export_folder)
    assert set(members) == {JSONL_NAME, *images}
    assert all(len(copies) == 1 for copies in members.values())
    for name, data in images.items():
        assert members[name] == [data]
    lines = [json.loads(line) for line in members[JSONL_NAME][0].decode().splitlines()]
    assert [(line["image"], line["status"]) for line in lines] == [
        ("a.jpg", "ok"),
        ("b.jpg", "ok"),
        ("c.png", "ok"),
        ("d.jpg", "ok"),
        ("e.jpg", "error"),
    ]
    assert lines[0]["task_id"] == "t1"
    for line in lines:
        for name in line["image_outputs"].values():
            assert name in members

    # A rerun with a larger limit overwrites archive 0 and removes the rest.
    again = export_job(processing, export, common_pb2.AGGREGATION_FORMAT_CSV, 0)
    assert again.archives == ["export-00000.tar.gz"]
    assert sorted(p.name for p in export_folder.iterdir()) == ["export-00000.tar.gz"]
    assert set(unpack_all(export_folder)) == {CSV_NAME, *images}


def test_export_job_without_results_writes_an_empty_aggregate(store_url: str) -> None:
    processing = storage.join(store_url, "alpha/empty-processing")
    export = storage.join(store_url, "alpha/empty-export")
    summary = export_job(processing, export, common_pb2.AGGREGATION_FORMAT_JSONL, 0)
    assert (summary.records, summary.failed, summary.archives) == (0, 0, ["export-00000.tar.gz"])


# ---------------------------------------------------------------------------------------------
# Tasks and acknowledgements (a fake message; the real loop is tested below)


def export_task(**fields: Any) -> tasks_pb2.Task:
    values: dict[str, Any] = {
        "task_id": "job1-export",
        "job_id": "job1",
        "workspace": "alpha",
        "stage": "export",
        "input_url": "file:///nowhere/in",
        "output_url": "file:///nowhere/out",
    }
    values.update(fields)
    return tasks_pb2.Task(**values)


def test_parse_task() -> None:
    assert parse_task(export_task().SerializeToString()).job_id == "job1"
    with pytest.raises(InvalidTask, match="unparsable"):
        parse_task(b"\xff\xff\xff")
    with pytest.raises(InvalidTask, match="not an export task"):
        parse_task(export_task(stage="process").SerializeToString())
    with pytest.raises(InvalidTask, match="output_url"):
        parse_task(export_task(output_url="").SerializeToString())
    assert job_from_subject(messaging.task_subject("export", "job7")) == "job7"


class FakeMetadata:
    def __init__(self, num_delivered: int) -> None:
        self.num_delivered = num_delivered


class FakeMsg:
    def __init__(self, data: bytes, num_delivered: int = 1) -> None:
        self.subject = messaging.task_subject("export", "job1")
        self.data = data
        self.metadata = FakeMetadata(num_delivered)
        self.calls: list[tuple[str, Any]] = []

    async def ack(self) -> None:
        self.calls.append(("ack", None))

    async def nak(self, delay: float | None = None) -> None:
        self.calls.append(("nak", delay))

    async def term(self) -> None:
        self.calls.append(("term", None))

    async def in_progress(self) -> None:
        self.calls.append(("in_progress", None))


class FakeJetStream:
    def __init__(self) -> None:
        self.published: list[tuple[str, tasks_pb2.TaskResult]] = []

    async def publish(self, subject: str, payload: bytes) -> None:
        self.published.append((subject, tasks_pb2.TaskResult.FromString(payload)))


class FakeClient:
    def __init__(self) -> None:
        self.js = FakeJetStream()

    def jetstream(self) -> FakeJetStream:
        return self.js


def fake_service(exporter: Callable[[tasks_pb2.Task], Any]) -> tuple[ExportService, FakeClient]:
    client = FakeClient()
    service = ExportService(
        client,  # type: ignore[arg-type]
        worker_id="exporter-test",
        exporter=exporter,
        in_progress_interval_s=0.05,
    )
    return service, client


def failing(error: Exception) -> Callable[[tasks_pb2.Task], Any]:
    def run(task: tasks_pb2.Task) -> Any:
        raise error

    return run


async def test_storage_error_naks_with_delay() -> None:
    service, client = fake_service(failing(OSError("bucket unreachable")))
    msg = FakeMsg(export_task().SerializeToString())
    await service.handle(msg)  # type: ignore[arg-type]
    assert msg.calls == [("nak", 5.0)]
    assert client.js.published == []


async def test_storage_error_on_last_delivery_reports_and_terminates() -> None:
    service, client = fake_service(failing(OSError("bucket unreachable")))
    msg = FakeMsg(export_task().SerializeToString(), num_delivered=messaging.MAX_DELIVERIES)
    await service.handle(msg)  # type: ignore[arg-type]
    assert msg.calls == [("term", None)]
    [(subject, result)] = client.js.published
    assert subject == messaging.result_subject("job1")
    assert not result.ok and "bucket unreachable" in result.error


async def test_bug_reports_and_terminates() -> None:
    service, client = fake_service(failing(ValueError("boom")))
    msg = FakeMsg(export_task().SerializeToString())
    await service.handle(msg)  # type: ignore[arg-type]
    assert msg.calls == [("term", None)]
    assert not client.js.published[0][1].ok


async def test_long_export_sends_in_progress() -> None:
    def slow(task: tasks_pb2.Task) -> Any:
        import time

        from sluice_exporter.export import ExportSummary

        time.sleep(0.3)
        return ExportSummary(records=2, failed=1, images=0, archives=["export-00000.tar.gz"])

    service, client = fake_service(slow)
    msg = FakeMsg(export_task().SerializeToString())
    await service.handle(msg)  # type: ignore[arg-type]
    assert ("in_progress", None) in msg.calls
    assert msg.calls[-1] == ("ack", None)
    result = client.js.published[0][1]
    assert (result.ok, result.items_done, result.items_failed) == (True, 2, 1)
    assert (result.stage, result.worker_id) == ("export", "exporter-test")


def test_parse_args() -> None:
    args = exporter_main.parse_args(["--slots", "3", "--health-address", "127.0.0.1:0"])
    assert (args.slots, args.health_address) == (3, "127.0.0.1:0")
    assert exporter_main.parse_args([]).slots == 1
    with pytest.raises(SystemExit):
        exporter_main.parse_args(["--slots", "0"])


# ---------------------------------------------------------------------------------------------
# The real loop against NATS


async def test_exporter_loop_over_nats(nats_server: NatsServer, store_url: str, tmp_path: Path) -> None:
    nc = await messaging.connect(nats_server.url, "test-exporter")
    js = nc.jetstream()
    await messaging.ensure_streams(js)
    job_id = f"job{secrets.token_hex(4)}"
    bad_job_id = f"job{secrets.token_hex(4)}"
    results: dict[str, asyncio.Queue[tasks_pb2.TaskResult]] = {
        job_id: asyncio.Queue(),
        bad_job_id: asyncio.Queue(),
    }
    heartbeats: asyncio.Queue[tasks_pb2.WorkerHeartbeat] = asyncio.Queue()

    async def on_result(msg: Any) -> None:
        result = tasks_pb2.TaskResult.FromString(msg.data)
        await results[result.job_id].put(result)

    async def on_heartbeat(msg: Any) -> None:
        await heartbeats.put(tasks_pb2.WorkerHeartbeat.FromString(msg.data))

    await nc.subscribe(messaging.result_subject(job_id), cb=on_result)
    await nc.subscribe(messaging.result_subject(bad_job_id), cb=on_result)
    await nc.subscribe(messaging.heartbeat_subject("export"), cb=on_heartbeat)

    processing = storage.join(store_url, f"alpha/{job_id}-processing")
    export = storage.join(store_url, f"alpha/{job_id}-export")
    images = write_fake_processing(processing)

    stop = asyncio.Event()
    service = ExportService(nc, slots=2, worker_id="exporter-it")
    running = asyncio.create_task(service.run(stop))
    try:
        task = tasks_pb2.Task(
            task_id=f"{job_id}-export",
            job_id=job_id,
            workspace="alpha",
            stage="export",
            input_url=processing,
            output_url=export,
            aggregation_format=common_pb2.AGGREGATION_FORMAT_CSV,
            max_archive_bytes=max(len(data) for data in images.values()) + 10,
        )
        await js.publish(messaging.task_subject("export", job_id), task.SerializeToString())
        await js.publish(messaging.task_subject("export", bad_job_id), b"\xff\xff not a task")

        result = await asyncio.wait_for(results[job_id].get(), 30)
        assert result.ok, result.error
        assert result.task_id == task.task_id
        assert (result.job_id, result.stage, result.worker_id) == (job_id, "export", "exporter-it")
        assert (result.items_done, result.items_failed) == (5, 1)
        assert result.duration_s > 0

        bad = await asyncio.wait_for(results[bad_job_id].get(), 30)
        assert not bad.ok and "unparsable" in bad.error

        beat = await asyncio.wait_for(heartbeats.get(), 10)
        assert beat.slots == 2
        assert beat.machine_type == common_pb2.MACHINE_TYPE_UNSPECIFIED
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
        await nc.drain()

    export_folder = tmp_path / f"objects/alpha/{job_id}-export"
    archives = sorted(p.name for p in export_folder.iterdir())
    assert len(archives) >= 3
    assert archives == [archive_name(i) for i in range(len(archives))]
    members = unpack_all(export_folder)
    assert set(members) == {CSV_NAME, *images}
    assert all(len(copies) == 1 for copies in members.values())
    rows = list(csv.DictReader(io.StringIO(members[CSV_NAME][0].decode())))
    assert [row["image"] for row in rows] == ["a.jpg", "b.jpg", "c.png", "d.jpg", "e.jpg"]
    assert rows[0]["annotated"] == "images/a.annotated.jpg"
    assert json.loads(rows[3]["predictions"]) == {"detections": 4}
    assert rows[4]["status"] == "error"
