"""Expiry of staged data: the real staging service (Postgres, NATS, a local object store) with a
clock the tests move, and the real scheduler refusing or holding the batches its jobs use."""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Awaitable, Sequence
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import cv2
import grpc
import numpy as np
import pytest

from sluice import storage
from sluice.cli.main import main
from sluice.clients import internal_metadata
from sluice.config import Settings
from sluice.messaging import event_subject
from sluice.v1 import common_pb2, events_pb2, scheduler_pb2, staging_pb2
from sluice_scheduler.coordinator import SchedulerOptions
from sluice_scheduler.service import start as start_scheduler
from sluice_staging.__main__ import _batch_ttl, _sweep_every
from sluice_staging.expiry import Expiry
from tests.scheduler_mesh import Mesh, create_job
from tests.staging_server import Launch, MovableClock, Staging
from tests.video_fixtures import make_test_video

IMAGES = common_pb2.BATCH_TYPE_IMAGES
VIDEOS = common_pb2.BATCH_TYPE_VIDEOS
RESULTS = common_pb2.BATCH_TYPE_PROCESSING_RESULTS
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", pixels)[1].tobytes()


async def create(
    staging: Staging, md: Any, batch_id: str, kind: common_pb2.BatchType = IMAGES, ttl_seconds: float = 0
) -> staging_pb2.Batch:
    request = staging_pb2.CreateBatchRequest(batch_id=batch_id, type=kind, ttl_seconds=ttl_seconds)
    return await staging.stub.CreateBatch(request, metadata=md)


async def upload(
    staging: Staging, md: Any, batch_id: str, files: dict[str, bytes]
) -> staging_pb2.UploadSummary:
    chunks = [
        staging_pb2.UploadChunk(batch_id=batch_id, file_name=name, data=data, last=True)
        for name, data in files.items()
    ]
    return await staging.stub.UploadFiles(iter(chunks), metadata=md)


async def get(staging: Staging, md: Any, batch_id: str) -> staging_pb2.Batch:
    return await staging.stub.GetBatch(staging_pb2.GetBatchRequest(batch_id=batch_id), metadata=md)


async def hold(staging: Staging, md: Any, batch_id: str, seconds: float, job_id: str = "job-1") -> Any:
    request = staging_pb2.HoldBatchRequest(batch_id=batch_id, job_id=job_id, hold_seconds=seconds)
    return await staging.stub.HoldBatch(request, metadata=md)


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def download(staging: Staging, md: Any, batch_id: str) -> list[staging_pb2.DownloadChunk]:
    request = staging_pb2.DownloadObjectsRequest(batch_id=batch_id)
    return [c async for c in staging.stub.DownloadObjects(request, metadata=md)]


def folder(store_url: str, workspace: str, batch_id: str) -> Path:
    return Path(store_url.removeprefix("file://")) / workspace / batch_id


def internal(settings: Settings, workspace: str = "alpha") -> Sequence[tuple[str, str]]:
    return internal_metadata(settings.internal_token, workspace)


async def expired_events(nc: Any, workspace: str, batch_ids: Sequence[str]) -> list[events_pb2.Event]:
    """The batch_expired events of these batches on the workspace's events stream, oldest first
    (the NATS server serves every test of the session)."""
    subject = event_subject(workspace, "batch_expired")
    js = nc.jetstream()
    stream = await js.find_stream_name_by_subject(subject)
    sub = await js.subscribe(subject, stream=stream, ordered_consumer=True)
    found: list[events_pb2.Event] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except TimeoutError:
                return found
            event = events_pb2.Event.FromString(msg.data)
            if event.batch_id in batch_ids:
                found.append(event)
    finally:
        await sub.unsubscribe()


def assert_expired_error(error: grpc.aio.AioRpcError, batch_id: str) -> None:
    assert error.code() == FAILED_PRECONDITION, error.details()
    details = error.details() or ""
    assert details.startswith(f"batch '{batch_id}' expired on "), details
    assert "UTC" in details


async def test_an_expired_batch_loses_its_bytes_and_is_refused(
    launch: Launch,
    alpha: Any,
    beta: Any,
    settings: Settings,
    store_url: str,
    nats_client: Any,
    tmp_path: Path,
) -> None:
    clock = MovableClock()
    staging = await launch(clock=clock, expiry_sweep_s=0)
    await create(staging, alpha, "old")
    await upload(staging, alpha, "old", {"a.jpg": jpeg(1), "cam/b.jpg": jpeg(2)})
    await create(staging, alpha, "clips", VIDEOS)
    clip = make_test_video(tmp_path / "clip.mp4", width=64, height=48, fps=5, duration_s=1)
    summary = await upload(staging, alpha, "clips", {"clip.mp4": clip.read_bytes()})
    assert summary.files_stored == 1, summary.rejected
    assert (folder(store_url, "alpha", "clips") / ".sluice" / "frames" / "clip.mp4.json").is_file()
    await create(staging, alpha, "fresh", ttl_seconds=30 * 86400)
    await upload(staging, alpha, "fresh", {"c.jpg": jpeg(3)})
    await create(staging, beta, "old", ttl_seconds=30 * 86400)  # the same id in another workspace
    await upload(staging, beta, "old", {"d.jpg": jpeg(4)})
    old = await get(staging, alpha, "old")
    assert not old.HasField("expired_at")

    assert await staging.sweep() == []  # nothing is due yet
    clock.advance(days=8)
    assert sorted(await staging.sweep()) == [("alpha", "clips"), ("alpha", "old")]

    assert not folder(store_url, "alpha", "old").exists()
    assert not folder(store_url, "alpha", "clips").exists()  # the .sluice/ frame index too
    assert (folder(store_url, "alpha", "fresh") / "c.jpg").is_file()
    assert (folder(store_url, "beta", "old") / "d.jpg").is_file()
    gone = await get(staging, alpha, "old")
    assert gone.HasField("expired_at")
    assert gone.object_count == 0
    assert gone.expires_at == old.expires_at
    listed = await staging.stub.ListBatches(staging_pb2.ListBatchesRequest(), metadata=alpha)
    expired = {b.batch_id for b in listed.batches if b.HasField("expired_at")}
    assert expired == {"old", "clips"}
    assert (await get(staging, beta, "old")).object_count == 1

    events = await expired_events(nats_client, "alpha", ["old", "clips"])
    assert sorted(e.batch_id for e in events) == ["clips", "old"]
    assert all(e.type == events_pb2.EVENT_TYPE_BATCH_EXPIRED and e.state == "expired" for e in events)
    assert all(e.workspace == "alpha" and e.event_id for e in events)

    for call in (
        staging.stub.ListBatchContent(staging_pb2.ListBatchContentRequest(batch_id="old"), metadata=alpha),
        download(staging, alpha, "old"),
        upload(staging, alpha, "old", {"e.jpg": jpeg(5)}),
        create(staging, alpha, "old"),  # an expired batch's id is not reused
        create(staging, alpha, "old", VIDEOS),
        staging.stub.GetBatchLocation(
            staging_pb2.GetBatchRequest(batch_id="old"), metadata=internal(settings)
        ),
    ):
        assert_expired_error(await rpc_error(call), "old")
    assert (
        "stage them again under a new batch id"
        in (await rpc_error(download(staging, alpha, "old"))).details()
    )
    assert not folder(store_url, "alpha", "old").exists()  # the refused upload wrote nothing
    assert await staging.sweep() == []  # purged once


async def test_a_batch_is_refused_once_its_expiry_passes_before_the_sweep(
    launch: Launch, alpha: Any, settings: Settings
) -> None:
    clock = MovableClock()
    staging = await launch(clock=clock, expiry_sweep_s=0)
    await create(staging, alpha, "stale")
    await upload(staging, alpha, "stale", {"a.jpg": jpeg(1)})
    clock.advance(days=7, seconds=1)
    error = await rpc_error(download(staging, alpha, "stale"))
    assert_expired_error(error, "stale")
    assert_expired_error(await rpc_error(hold(staging, internal(settings), "stale", 60)), "stale")
    batch = await get(staging, alpha, "stale")  # still described, not yet purged
    assert not batch.HasField("expired_at") and batch.object_count == 1


async def test_a_held_batch_is_kept_until_its_hold_lapses(
    launch: Launch, alpha: Any, settings: Settings, store_url: str
) -> None:
    clock = MovableClock()
    staging = await launch(clock=clock, expiry_sweep_s=0)
    md = internal(settings)
    await create(staging, alpha, "busy")
    await upload(staging, alpha, "busy", {"a.jpg": jpeg(1)})
    for bad in (0, -5, math.nan, math.inf, 10 * 86400):
        error = await rpc_error(hold(staging, md, "busy", bad))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "hold_seconds" in (error.details() or "")
    assert (await rpc_error(hold(staging, md, "nothing", 60))).code() == grpc.StatusCode.NOT_FOUND
    denied = await rpc_error(hold(staging, alpha, "busy", 60))  # service-to-service only
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED

    clock.advance(days=6, hours=23)
    held = await hold(staging, md, "busy", 86400)
    start = clock()
    assert abs(held.held_until.ToDatetime(tzinfo=UTC) - (start + timedelta(days=1))) < timedelta(seconds=5)
    shorter = await hold(staging, md, "busy", 60)  # a shorter hold never shortens it
    assert shorter.held_until == held.held_until

    clock.advance(hours=12)  # past its expiry, inside the hold
    assert await staging.sweep() == []
    assert (folder(store_url, "alpha", "busy") / "a.jpg").is_file()
    assert len(await download(staging, alpha, "busy")) == 1  # still usable by the job
    renewed = await hold(staging, md, "busy", 86400)  # renewing past its expiry is fine
    assert renewed.held_until.ToDatetime() > held.held_until.ToDatetime()

    clock.advance(days=1, hours=1)  # the renewed hold has lapsed
    assert await staging.sweep() == [("alpha", "busy")]
    assert not folder(store_url, "alpha", "busy").exists()
    error = await rpc_error(hold(staging, md, "busy", 60))
    assert_expired_error(error, "busy")
    lapsed = renewed.held_until.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC")
    assert lapsed in (error.details() or "")  # it expired when the hold lapsed


async def test_each_batch_can_have_its_own_lifetime(launch: Launch, alpha: Any, store_url: str) -> None:
    clock = MovableClock()
    staging = await launch(clock=clock, expiry_sweep_s=0)
    short = await create(staging, alpha, "short", ttl_seconds=3600)
    assert short.expires_at.ToDatetime() - short.created_at.ToDatetime() == timedelta(hours=1)
    again = await create(staging, alpha, "short", ttl_seconds=86400)  # resuming keeps its expiry
    assert again.expires_at == short.expires_at
    usual = await create(staging, alpha, "usual")
    assert usual.expires_at.ToDatetime() - usual.created_at.ToDatetime() == timedelta(days=7)
    for bad in (-1, math.nan, math.inf, -math.inf, 1e12):
        error = await rpc_error(create(staging, alpha, "bad", ttl_seconds=bad))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "ttl_seconds must be a positive number of seconds" in (error.details() or "")
    await upload(staging, alpha, "short", {"a.jpg": jpeg(1)})
    await upload(staging, alpha, "usual", {"a.jpg": jpeg(1)})

    clock.advance(hours=2)
    assert await staging.sweep() == [("alpha", "short")]
    assert not folder(store_url, "alpha", "short").exists()
    assert (folder(store_url, "alpha", "usual") / "a.jpg").is_file()


async def test_output_batches_expire_from_their_last_registration(
    launch: Launch, settings: Settings, store_url: str, alpha: Any
) -> None:
    clock = MovableClock()
    staging = await launch(clock=clock, expiry_sweep_s=0)
    md = internal(settings)
    url = storage.ObjectStore(store_url).batch_url("alpha", "job-1-processing")
    storage.write_bytes(url, "results/t0.jsonl", b'{"image": "a.jpg"}\n')
    request = staging_pb2.RegisterOutputBatchRequest(
        batch_id="job-1-processing", type=RESULTS, source_job_id="job-1"
    )
    first = await staging.stub.RegisterOutputBatch(request, metadata=md)
    assert first.expires_at.ToDatetime() - first.created_at.ToDatetime() == timedelta(days=7)

    clock.advance(days=3)  # a restarted job writes it again: kept 7 days from then
    storage.write_bytes(url, "results/t1.jsonl", b'{"image": "b.jpg"}\n')
    second = await staging.stub.RegisterOutputBatch(request, metadata=md)
    assert second.object_count == 2
    assert second.expires_at.ToDatetime() - first.expires_at.ToDatetime() > timedelta(days=2, hours=23)

    clock.advance(days=5)  # 8 days after the first registration, 5 after the last
    assert await staging.sweep() == []
    clock.advance(days=3)
    assert await staging.sweep() == [("alpha", "job-1-processing")]
    assert not folder(store_url, "alpha", "job-1-processing").exists()
    error = await rpc_error(staging.stub.RegisterOutputBatch(request, metadata=md))
    assert error.code() == FAILED_PRECONDITION
    assert "the outputs of job 'job-1' it held were deleted" in (error.details() or "")
    gone = await get(staging, alpha, "job-1-processing")
    assert gone.HasField("expired_at") and gone.source_job_id == "job-1"


async def test_a_purge_cut_short_is_finished_by_the_next_sweep_and_replicas_share_the_work(
    launch: Launch, alpha: Any, store_url: str, nats_client: Any
) -> None:
    clock = MovableClock()
    first = await launch(clock=clock, expiry_sweep_s=0)
    second = await launch(clock=clock, expiry_sweep_s=0)  # a second replica on the same database
    ids = [f"b{i}-{secrets.token_hex(3)}" for i in range(6)]
    for batch_id in ids:
        await create(first, alpha, batch_id)
        await upload(first, alpha, batch_id, {"a.jpg": jpeg(1), "b.jpg": jpeg(2)})
    clock.advance(days=8)

    async def crash(*_: Any) -> None:
        raise ConnectionError("NATS went away")

    assert first.running.expiry is not None
    running = first.running
    broken = Expiry(running.expiry._repository, running.expiry._store, running.nats.jetstream(), clock, crash)
    assert await broken.sweep() == []  # bytes deleted, then the publish failed: rolled back
    assert not folder(store_url, "alpha", ids[0]).exists()
    assert not (await get(first, alpha, ids[0])).HasField("expired_at")
    assert await expired_events(nats_client, "alpha", ids) == []

    one, two = await asyncio.gather(first.sweep(), second.sweep())
    assert sorted(one + two) == [("alpha", b) for b in ids]  # each purged by one replica only
    events = await expired_events(nats_client, "alpha", ids)
    assert sorted(e.batch_id for e in events) == ids
    for batch_id in ids:
        assert (await get(second, alpha, batch_id)).HasField("expired_at")


async def test_the_sweep_runs_by_itself(launch: Launch, alpha: Any, store_url: str) -> None:
    clock = MovableClock()
    staging = await launch(clock=clock, expiry_sweep_s=0.1)
    await create(staging, alpha, "soon")
    await upload(staging, alpha, "soon", {"a.jpg": jpeg(1)})
    clock.advance(days=8)
    for _ in range(100):
        if (await get(staging, alpha, "soon")).HasField("expired_at"):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the sweep loop never purged the batch")
    assert not folder(store_url, "alpha", "soon").exists()


def expires_line(details: str) -> str:
    """The value of show-batch-details' `expires` line."""
    lines = [line for line in details.splitlines() if line.startswith("expires ")]
    assert len(lines) == 1, details
    return lines[0].removeprefix("expires").strip()


async def test_the_cli_sets_and_shows_expiry(
    launch: Launch, api_keys: Any, alpha: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = MovableClock()
    staging = await launch(clock=clock, expiry_sweep_s=0)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(jpeg(1))
    connection = ["--api-key", api_keys[1]["alpha"], "--staging-address", f"127.0.0.1:{staging.running.port}"]

    def cli(*words: str) -> int:
        return main([*words, *connection])

    create_words = ["data-staging", "create-batch-of-images", "-i", str(photos), "-b", "trip"]
    with pytest.raises(SystemExit):
        await asyncio.to_thread(cli, *create_words, "--expire-after-days", "-1")
    assert "--expire-after-days: must be a positive number of days" in capsys.readouterr().err
    assert await asyncio.to_thread(cli, *create_words, "--expire-after-days", "2.5") == 0
    capsys.readouterr()
    batch = await get(staging, alpha, "trip")
    assert batch.expires_at.ToDatetime() - batch.created_at.ToDatetime() == timedelta(days=2, hours=12)
    expires = batch.expires_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC")
    assert await asyncio.to_thread(cli, "data-staging", "show-batch-details", "-b", "trip") == 0
    assert expires_line(capsys.readouterr().out) == expires

    clock.advance(days=3)
    assert await staging.sweep() == [("alpha", "trip")]
    assert await asyncio.to_thread(cli, "data-staging", "show-batch-details", "-b", "trip") == 0
    assert expires_line(capsys.readouterr().out) == f"expired on {expires}"
    assert await asyncio.to_thread(cli, "data-staging", "list-batches") == 0
    assert f"expired on {expires}" in capsys.readouterr().out
    assert await asyncio.to_thread(cli, *create_words) == 1  # the id is not reused
    err = capsys.readouterr().err
    assert f"batch 'trip' expired on {expires}" in err


async def test_a_job_on_an_expired_batch_is_refused_before_anything_is_written(mesh: Mesh) -> None:
    mesh.clock.advance(days=8)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create_job(mesh, "late")
    assert raised.value.code() == FAILED_PRECONDITION
    assert (raised.value.details() or "").startswith("batch 'pics' expired on ")
    print(f"[expired batch, clock moved 8 days] {raised.value.code().name}: {raised.value.details()}")
    stub = mesh.scheduler_stub()
    jobs = await stub.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=mesh.md())
    assert [j.job_id for j in jobs.jobs] == []
    assert mesh.staging.expiry is not None
    assert await mesh.staging.expiry.sweep() == [("alpha", "pics")]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create_job(mesh, "later")
    assert raised.value.code() == FAILED_PRECONDITION


async def test_an_active_job_holds_its_input_batch(mesh: Mesh) -> None:
    staging = mesh.staging_stub()
    request = staging_pb2.GetBatchRequest(batch_id="pics")
    await create_job(mesh, "busy")  # no worker: it stays queued, holding its batch
    held = await staging.GetBatch(request, metadata=mesh.md())
    now = mesh.clock()
    assert now + timedelta(minutes=14) < held.held_until.ToDatetime(tzinfo=UTC) <= now + timedelta(minutes=15)

    # The scheduler renews the hold while the job is queued or running.
    await mesh.scheduler.stop()
    options = SchedulerOptions(task_size=3, hold_renew_s=0.1)
    mesh.scheduler = await start_scheduler(mesh.settings, "127.0.0.1:0", options)
    assert mesh.staging.expiry is not None

    async def renewal() -> staging_pb2.Batch:
        """The batch once the scheduler has held it again from the clock's present time."""
        for _ in range(100):
            batch = await staging.GetBatch(request, metadata=mesh.md())
            if batch.held_until.ToDatetime(tzinfo=UTC) > mesh.clock() + timedelta(minutes=14):
                return batch
            await asyncio.sleep(0.05)
        raise AssertionError("the hold was not renewed")

    mesh.clock.advance(days=7, minutes=-1)  # a minute before the batch's expiry
    await renewal()
    mesh.clock.advance(minutes=10)  # past its expiry: only the job's hold keeps it
    assert await mesh.staging.expiry.sweep() == []
    objects = await staging.ListBatchContent(
        staging_pb2.ListBatchContentRequest(batch_id="pics"), metadata=mesh.md()
    )
    assert len(objects.objects) == 7
    await renewal()  # renewed past the batch's expiry too

    # Once the job ends its hold is no longer renewed and lapses.
    await mesh.scheduler_stub().AbortJob(scheduler_pb2.AbortJobRequest(job_id="busy"), metadata=mesh.md())
    await asyncio.sleep(0.3)
    mesh.clock.advance(minutes=16)
    assert await mesh.staging.expiry.sweep() == [("alpha", "pics")]
    # Restarting it is refused: its input has expired.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.scheduler_stub().RestartJob(
            scheduler_pb2.RestartJobRequest(job_id="busy"), metadata=mesh.md()
        )
    assert raised.value.code() == FAILED_PRECONDITION
    assert "batch 'pics' expired on " in (raised.value.details() or "")


def test_the_installation_settings_are_checked() -> None:
    assert _sweep_every("") == 60.0
    assert _sweep_every("0") == 0.0  # no sweeping
    assert _sweep_every("2.5") == 2.5
    for bad in ("-1", "nan", "inf", "often"):
        with pytest.raises(SystemExit, match="SLUICE_EXPIRY_SWEEP_S"):
            _sweep_every(bad)
    for bad in ("nan", "inf", "3651"):
        with pytest.raises(SystemExit, match="SLUICE_BATCH_TTL_DAYS"):
            _batch_ttl(bad)
