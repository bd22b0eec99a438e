"""The staging service, served for real (Postgres, NATS, a local object store) and called over gRPC."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import grpc
import numpy as np
import pytest
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sluice import storage
from sluice.cli.main import main
from sluice.clients import internal_metadata, user_metadata
from sluice.config import Settings
from sluice.ids import ID_RULE
from sluice.messaging import event_subject, events_stream
from sluice.storage import ObjectStore
from sluice.v1 import common_pb2, events_pb2, staging_pb2
from sluice_staging.__main__ import _batch_ttl
from tests.staging_server import Launch, Staging

IMAGES = common_pb2.BATCH_TYPE_IMAGES
VIDEOS = common_pb2.BATCH_TYPE_VIDEOS
RESULTS = common_pb2.BATCH_TYPE_PROCESSING_RESULTS
MiB = 1024 * 1024


@pytest.fixture
async def staging(launch: Launch) -> Staging:
    return await launch()


def jpeg(seed: int, size: int = 48) -> bytes:
    """A real JPEG of random pixels."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels)
    assert ok
    return encoded.tobytes()


def upload_chunks(
    batch_id: str, files: Iterable[tuple[str, bytes]], chunk_bytes: int = 1000
) -> list[staging_pb2.UploadChunk]:
    """Each file as a run of chunks of at most `chunk_bytes`, the last one with last=True."""
    chunks = []
    for name, data in files:
        pieces = [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)] or [b""]
        for i, piece in enumerate(pieces):
            chunks.append(
                staging_pb2.UploadChunk(
                    batch_id=batch_id, file_name=name, data=piece, last=i == len(pieces) - 1
                )
            )
    return chunks


async def upload(
    staging: Staging,
    metadata: Sequence[tuple[str, str]],
    batch_id: str,
    files: Iterable[tuple[str, bytes]],
) -> staging_pb2.UploadSummary:
    return await staging.stub.UploadFiles(iter(upload_chunks(batch_id, files)), metadata=metadata)


async def create(
    staging: Staging, metadata: Sequence[tuple[str, str]], batch_id: str, kind: common_pb2.BatchType = IMAGES
) -> staging_pb2.Batch:
    return await staging.stub.CreateBatch(
        staging_pb2.CreateBatchRequest(batch_id=batch_id, type=kind), metadata=metadata
    )


async def content(
    staging: Staging, metadata: Sequence[tuple[str, str]], batch_id: str, **fields: Any
) -> list[staging_pb2.BatchObject]:
    """Every object listed, page after page."""
    request = staging_pb2.ListBatchContentRequest(batch_id=batch_id, **fields)
    objects: list[staging_pb2.BatchObject] = []
    while True:
        page = await staging.stub.ListBatchContent(request, metadata=metadata)
        objects.extend(page.objects)
        if not page.next_page_token:
            return objects
        request.page_token = page.next_page_token


async def download(
    staging: Staging, metadata: Sequence[tuple[str, str]], batch_id: str, names: Sequence[str] = ()
) -> tuple[dict[str, bytes], list[staging_pb2.DownloadChunk]]:
    request = staging_pb2.DownloadObjectsRequest(batch_id=batch_id, names=list(names))
    chunks = [c async for c in staging.stub.DownloadObjects(request, metadata=metadata)]
    files: dict[str, bytes] = {}
    for chunk in chunks:
        files[chunk.name] = files.get(chunk.name, b"") + chunk.data
    return files, chunks


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


def store_files(store_url: str) -> set[str]:
    """Every file in the object store, relative to its root."""
    return set(storage.list_objects(store_url))


async def test_invalid_batch_id_is_refused_with_the_rule(staging: Staging, alpha: Any) -> None:
    for bad in ("Has Spaces", "UPPER", "a" * 65, "../up", ""):
        error = await rpc_error(create(staging, alpha, bad))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert ID_RULE in (error.details() or "")
    error = await rpc_error(create(staging, alpha, "ok", common_pb2.BATCH_TYPE_UNSPECIFIED))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "images or videos" in (error.details() or "")
    error = await rpc_error(create(staging, alpha, "ok", RESULTS))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_create_returns_the_existing_batch_of_the_same_type(staging: Staging, alpha: Any) -> None:
    first = await create(staging, alpha, "holiday")
    again = await create(staging, alpha, "holiday")
    assert again.created_at == first.created_at
    assert first.type == IMAGES
    lifetime = first.expires_at.ToDatetime() - first.created_at.ToDatetime()
    assert lifetime == timedelta(days=7)
    error = await rpc_error(create(staging, alpha, "holiday", VIDEOS))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "images" in (error.details() or "")


async def test_many_files_in_one_stream(staging: Staging, alpha: Any, store_url: str) -> None:
    await create(staging, alpha, "many")
    files = {f"cam{i % 3}/frame_{i:03d}.jpg": jpeg(i) for i in range(25)}
    summary = await upload(staging, alpha, "many", files.items())
    assert summary.files_stored == 25
    assert summary.bytes_stored == sum(len(d) for d in files.values())
    assert not summary.rejected

    listed = await content(staging, alpha, "many", all_parts=True, page_size=7)
    assert [o.name for o in listed] == sorted(files)
    assert all(o.content_type == "image/jpeg" for o in listed)
    assert {o.name: o.size_bytes for o in listed} == {n: len(d) for n, d in files.items()}

    batch = await staging.stub.GetBatch(staging_pb2.GetBatchRequest(batch_id="many"), metadata=alpha)
    assert (batch.object_count, batch.total_bytes, batch.part_count) == (
        25,
        summary.bytes_stored,
        1,
    )
    root = ObjectStore(store_url).batch_url("alpha", "many")
    for name, data in files.items():
        assert storage.read_bytes(root, name) == data
    # A name prefix lists only its folder, page after page (the dashboard's gallery lists images/).
    cam1 = await content(staging, alpha, "many", all_parts=True, page_size=3, name_prefix="cam1/")
    assert [o.name for o in cam1] == sorted(n for n in files if n.startswith("cam1/"))
    assert not await content(staging, alpha, "many", all_parts=True, name_prefix="cam1/frame_9")


async def test_names_with_url_syntax_are_stored_as_themselves(
    staging: Staging, alpha: Any, store_url: str
) -> None:
    await create(staging, alpha, "odd")
    files = {
        name: jpeg(i)
        for i, name in enumerate(
            ["scan::001.jpg", "scan::002.jpg", "a b#1?.png", "%20[x]*.jpg", "ünï/日本.jpg"]
        )
    }
    summary = await upload(staging, alpha, "odd", files.items())
    assert (summary.files_stored, list(summary.rejected)) == (len(files), [])
    for name, data in files.items():
        received, _ = await download(staging, alpha, "odd", [name])
        assert received == {name: data}
    assert store_files(store_url) == {f"alpha/odd/{name}" for name in files}


async def test_upload_resumes_into_an_existing_batch(staging: Staging, alpha: Any) -> None:
    files = [(f"img_{i}.png", jpeg(100 + i)) for i in range(8)]
    await create(staging, alpha, "resume")
    await upload(staging, alpha, "resume", files[:5])
    listed = await content(staging, alpha, "resume", all_parts=True)
    assert [o.name for o in listed] == [name for name, _ in files[:5]]

    # The client learns what is there, creates the batch again and sends only the rest.
    batch = await create(staging, alpha, "resume")
    assert batch.object_count == 5
    have = {o.name for o in listed}
    summary = await upload(staging, alpha, "resume", [f for f in files if f[0] not in have])
    assert summary.files_stored == 3
    batch = await staging.stub.GetBatch(staging_pb2.GetBatchRequest(batch_id="resume"), metadata=alpha)
    assert batch.object_count == 8


async def test_bad_files_are_rejected_and_the_rest_stored(
    staging: Staging, alpha: Any, store_url: str
) -> None:
    await create(staging, alpha, "mixed")
    summary = await upload(
        staging,
        alpha,
        "mixed",
        [
            ("good.jpg", jpeg(1)),
            ("notes.txt", b"hello"),
            ("../x.jpg", jpeg(2)),
            ("/etc/x.jpg", jpeg(3)),
            ("dir/../../y.jpg", jpeg(4)),
            ("README", b"no extension"),
            ("also/good.jpeg", jpeg(5)),
        ],
    )
    assert summary.files_stored == 2
    reasons = {r.file_name: r.reason for r in summary.rejected}
    assert reasons["notes.txt"] == "not an image: .txt files are not staged"
    assert "'..'" in reasons["../x.jpg"]
    assert "absolute" in reasons["/etc/x.jpg"]
    assert "'..'" in reasons["dir/../../y.jpg"]
    assert "extension" in reasons["README"]
    assert store_files(store_url) == {"alpha/mixed/good.jpg", "alpha/mixed/also/good.jpeg"}
    assert not Path("/etc/x.jpg").exists()


async def test_gif_images_are_staged(staging: Staging, alpha: Any) -> None:
    await create(staging, alpha, "gifs")
    ok, gif = cv2.imencode(".gif", np.zeros((8, 8, 3), dtype=np.uint8))
    assert ok
    summary = await upload(staging, alpha, "gifs", [("a.gif", gif.tobytes()), ("B.GIF", gif.tobytes())])
    assert (summary.files_stored, list(summary.rejected)) == (2, [])
    assert [(o.name, o.content_type) for o in await content(staging, alpha, "gifs")] == [
        ("B.GIF", "image/gif"),
        ("a.gif", "image/gif"),
    ]


async def test_the_cli_refuses_an_images_folder_without_images(
    staging: Staging, api_keys: tuple[Path, dict[str, str]], alpha: Any, tmp_path: Path, capsys: Any
) -> None:
    folders = {"empty": {}, "notes": {"a.txt": b"x"}, "photos": {"a.jpg": jpeg(1), "b.txt": b"x"}}
    for folder, files in folders.items():
        (tmp_path / folder).mkdir()
        for name, data in files.items():
            (tmp_path / folder / name).write_bytes(data)

    address = f"127.0.0.1:{staging.running.port}"

    def cli(folder: str, batch_id: str) -> int:
        command = ["data-staging", "create-batch-of-images", "--images-dir", str(tmp_path / folder)]
        connection = ["--api-key", api_keys[1]["alpha"], "--staging-address", address]
        return main([*command, "--batch-id", batch_id, *connection])

    assert await asyncio.to_thread(cli, "empty", "b") == 1
    assert capsys.readouterr() == ("", f"error: no images in {tmp_path / 'empty'} (nothing to upload)\n")
    assert await asyncio.to_thread(cli, "notes", "b") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: no images in {tmp_path / 'notes'} (nothing to upload; none of its 1 files")
    assert err.count("\n") == 1
    error = await rpc_error(staging.stub.GetBatch(staging_pb2.GetBatchRequest(batch_id="b"), metadata=alpha))
    assert error.code() == grpc.StatusCode.NOT_FOUND

    assert await asyncio.to_thread(cli, "photos", "c") == 0
    assert "batch c: 1 uploaded" in capsys.readouterr().out
    assert [o.name for o in await content(staging, alpha, "c")] == ["a.jpg"]


async def test_videos_batch_takes_only_videos(staging: Staging, alpha: Any, store_url: str) -> None:
    # Real videos are staged in tests/test_video_staging.py; here, what is refused before probing.
    await create(staging, alpha, "clips", VIDEOS)
    summary = await upload(
        staging, alpha, "clips", [("a.jpg", jpeg(1)), ("README", b"x"), ("a.mp4", b"\x00" * 10)]
    )
    assert summary.files_stored == 0
    reasons = {r.file_name: r.reason for r in summary.rejected}
    assert reasons["a.jpg"] == "not a video: .jpg files are not staged"
    assert "extension" in reasons["README"]
    assert reasons["a.mp4"].startswith("not a decodable video: ")
    assert store_files(store_url) == set()


async def test_a_file_and_a_folder_cannot_share_a_name(staging: Staging, alpha: Any, store_url: str) -> None:
    await create(staging, alpha, "clash")
    await upload(staging, alpha, "clash", [("day.png/b.png", jpeg(1)), ("a.jpg", jpeg(2))])
    summary = await upload(staging, alpha, "clash", [("day.png", jpeg(3)), ("a.jpg/c.png", jpeg(4))])
    assert summary.files_stored == 0
    assert {r.file_name for r in summary.rejected} == {"day.png", "a.jpg/c.png"}
    assert all(r.reason.startswith("name clash") for r in summary.rejected)
    assert store_files(store_url) == {"alpha/clash/day.png/b.png", "alpha/clash/a.jpg"}


async def test_oversized_and_unfinished_files_are_rejected(launch: Launch, alpha: Any) -> None:
    staging = await launch(max_file_bytes=3000)
    await create(staging, alpha, "limits")
    chunks = upload_chunks("limits", [("big.jpg", b"x" * 5000), ("ok.jpg", b"y" * 2000)])
    chunks += upload_chunks("limits", [("cut.jpg", b"z" * 2500)])[:-1]  # no last chunk
    chunks += upload_chunks("limits", [("after.jpg", b"w" * 10)])
    chunks += upload_chunks("limits", [("tail.jpg", b"v" * 2500)])[:-1]  # stream ends early
    summary = await staging.stub.UploadFiles(iter(chunks), metadata=alpha)
    assert summary.files_stored == 2
    reasons = {r.file_name: r.reason for r in summary.rejected}
    assert reasons["big.jpg"] == "too large: files over 3000 bytes are not staged"
    assert reasons["cut.jpg"].startswith("incomplete")
    assert reasons["tail.jpg"].startswith("incomplete")


async def test_upload_needs_an_existing_batch(staging: Staging, alpha: Any) -> None:
    error = await rpc_error(upload(staging, alpha, "nowhere", [("a.jpg", jpeg(0))]))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "batch 'nowhere' not found; create it first"


async def test_objects_are_split_into_parts(launch: Launch, alpha: Any) -> None:
    staging = await launch(part_size=3)
    await create(staging, alpha, "parts")
    files = [(f"p{i}.jpg", jpeg(i, size=16)) for i in range(7)]
    await upload(staging, alpha, "parts", files[:4])
    await upload(staging, alpha, "parts", [*files[4:], files[0]])  # p0 again keeps its part
    batch = await staging.stub.GetBatch(staging_pb2.GetBatchRequest(batch_id="parts"), metadata=alpha)
    assert batch.part_count == 3
    assert [(p.index, p.object_count) for p in batch.parts] == [(0, 3), (1, 3), (2, 1)]
    assert sum(p.total_bytes for p in batch.parts) == batch.total_bytes
    last_part = await content(staging, alpha, "parts", part_index=2)
    assert [o.name for o in last_part] == ["p6.jpg"]
    first_part = await content(staging, alpha, "parts")  # all_parts unset, part_index 0
    assert [o.name for o in first_part] == ["p0.jpg", "p1.jpg", "p2.jpg"]
    everything = await content(staging, alpha, "parts", part_index=-1)
    assert len(everything) == 7


async def test_batches_are_listed_newest_first_in_pages(staging: Staging, alpha: Any) -> None:
    for batch_id in ("first", "second", "third"):
        await create(staging, alpha, batch_id)
    page = await staging.stub.ListBatches(staging_pb2.ListBatchesRequest(page_size=2), metadata=alpha)
    assert [b.batch_id for b in page.batches] == ["third", "second"]
    assert page.next_page_token
    rest = await staging.stub.ListBatches(
        staging_pb2.ListBatchesRequest(page_size=2, page_token=page.next_page_token),
        metadata=alpha,
    )
    assert [b.batch_id for b in rest.batches] == ["first"]
    assert not rest.next_page_token
    error = await rpc_error(
        staging.stub.ListBatches(staging_pb2.ListBatchesRequest(page_token="not a token"), metadata=alpha)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_workspaces_are_isolated(staging: Staging, alpha: Any, beta: Any) -> None:
    await create(staging, alpha, "private")
    await upload(staging, alpha, "private", [("a.jpg", jpeg(7))])
    request = staging_pb2.GetBatchRequest(batch_id="private")
    for call in (
        staging.stub.GetBatch(request, metadata=beta),
        staging.stub.ListBatchContent(
            staging_pb2.ListBatchContentRequest(batch_id="private", all_parts=True), metadata=beta
        ),
        download(staging, beta, "private"),
        upload(staging, beta, "private", [("b.jpg", jpeg(8))]),
    ):
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
    listed = await staging.stub.ListBatches(staging_pb2.ListBatchesRequest(), metadata=beta)
    assert "private" not in [b.batch_id for b in listed.batches]
    # beta may use the same id for a batch of its own, of another type
    mine = await create(staging, beta, "private", VIDEOS)
    assert mine.object_count == 0


async def test_missing_or_invalid_api_key_is_unauthenticated(staging: Staging) -> None:
    request = staging_pb2.ListBatchesRequest()
    for metadata in ((), user_metadata("sk_not_a_key")):
        error = await rpc_error(staging.stub.ListBatches(request, metadata=metadata))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    error = await rpc_error(
        staging.stub.ListBatches(request, metadata=internal_metadata("wrong-token", "alpha"))
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_download_returns_identical_bytes(staging: Staging, alpha: Any) -> None:
    await create(staging, alpha, "roundtrip")
    files = {
        "big.jpg": secrets.token_bytes(int(2.5 * MiB)),
        "empty.jpg": b"",
        "small/one.png": jpeg(9),
    }
    await staging.stub.UploadFiles(
        iter(upload_chunks("roundtrip", files.items(), chunk_bytes=MiB)), metadata=alpha
    )
    received, chunks = await download(staging, alpha, "roundtrip")
    assert received == files
    assert all(len(c.data) <= MiB for c in chunks)
    assert [c.name for c in chunks if c.last] == sorted(files)
    assert all(c.size_bytes == len(files[c.name]) for c in chunks)
    assert [c.name for c in chunks].count("big.jpg") == 3

    some, _ = await download(staging, alpha, "roundtrip", ["small/one.png", "empty.jpg"])
    assert some == {"small/one.png": files["small/one.png"], "empty.jpg": b""}
    error = await rpc_error(download(staging, alpha, "roundtrip", ["big.jpg", "ghost.jpg"]))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "ghost.jpg" in (error.details() or "")


async def test_register_output_batch_counts_objects_written_directly(
    staging: Staging, settings: Settings, alpha: Any
) -> None:
    internal = internal_metadata(settings.internal_token, "alpha")
    root = ObjectStore(settings.store_url).batch_url("alpha", "job-1-results")
    for i in range(4):
        storage.write_bytes(root, f"shard-{i}/results.jsonl", b"{}\n" * (i + 1))
    request = staging_pb2.RegisterOutputBatchRequest(
        batch_id="job-1-results", type=RESULTS, source_job_id="job-1"
    )
    batch = await staging.stub.RegisterOutputBatch(request, metadata=internal)
    assert (batch.object_count, batch.total_bytes) == (4, 3 * (1 + 2 + 3 + 4))
    assert batch.source_job_id == "job-1"
    assert batch.type == RESULTS
    again = await staging.stub.RegisterOutputBatch(request, metadata=internal)
    assert (again.object_count, again.total_bytes) == (4, 30)

    # the user sees and downloads it with their own key
    seen = await staging.stub.GetBatch(staging_pb2.GetBatchRequest(batch_id="job-1-results"), metadata=alpha)
    assert seen.object_count == 4
    received, _ = await download(staging, alpha, "job-1-results", ["shard-3/results.jsonl"])
    assert received == {"shard-3/results.jsonl": b"{}\n" * 4}
    location = await staging.stub.GetBatchLocation(
        staging_pb2.GetBatchRequest(batch_id="job-1-results"), metadata=internal
    )
    assert location.url == root

    error = await rpc_error(staging.stub.RegisterOutputBatch(request, metadata=alpha))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await rpc_error(upload(staging, alpha, "job-1-results", [("x.jpg", jpeg(1))]))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_batch_ingested_event_lands_on_the_events_stream(
    staging: Staging, alpha: Any, nats_client: Any
) -> None:
    batch_id = f"events-{secrets.token_hex(3)}"
    await create(staging, alpha, batch_id)
    await upload(staging, alpha, batch_id, [(f"{i}.jpg", jpeg(i)) for i in range(3)])
    message = await nats_client.jetstream().get_last_msg(
        events_stream("alpha"), event_subject("alpha", "batch_ingested")
    )
    event = events_pb2.Event.FromString(message.data)
    assert event.type == events_pb2.EVENT_TYPE_BATCH_INGESTED
    assert (event.workspace, event.batch_id) == ("alpha", batch_id)
    assert event.message == "3 files stored"
    assert event.event_id


async def test_expired_batches_are_refused(launch: Launch, alpha: Any) -> None:
    staging = await launch(batch_ttl=timedelta(0))
    await create(staging, alpha, "gone")
    request = staging_pb2.GetBatchRequest(batch_id="gone")
    described = await staging.stub.GetBatch(request, metadata=alpha)  # it says when it expires
    assert described.expires_at == described.created_at
    for call in (
        staging.stub.ListBatchContent(staging_pb2.ListBatchContentRequest(batch_id="gone"), metadata=alpha),
        download(staging, alpha, "gone"),
        upload(staging, alpha, "gone", [("a.jpg", jpeg(1))]),
    ):
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert (error.details() or "").startswith("batch 'gone' expired on ")


async def test_data_survives_a_restart(launch: Launch, alpha: Any) -> None:
    first = await launch()
    await create(first, alpha, "durable")
    files = {f"{i}.jpg": jpeg(i) for i in range(3)}
    await upload(first, alpha, "durable", files.items())
    await first.stop()

    second = await launch()
    batch = await second.stub.GetBatch(staging_pb2.GetBatchRequest(batch_id="durable"), metadata=alpha)
    assert batch.object_count == 3
    received, _ = await download(second, alpha, "durable")
    assert received == files


async def test_health_and_reflection(staging: Staging) -> None:
    health = health_pb2_grpc.HealthStub(staging.channel)
    for service in ("", "sluice.v1.StagingService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(staging.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    replies = [r async for r in reflection.ServerReflectionInfo(iter([request]))]
    names = {s.name for s in replies[0].list_services_response.service}
    assert "sluice.v1.StagingService" in names


async def test_reflection_v1_lists_and_describes_the_services(staging: Staging) -> None:
    # A v1 client: v1's messages are v1alpha's, field for field, under another package.
    info = staging.channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    symbols = ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        *(reflection_pb2.ServerReflectionRequest(file_containing_symbol=s) for s in symbols),
    ]
    replies = [r async for r in info(iter(requests))]
    names = {s.name for s in replies[0].list_services_response.service}
    assert {"grpc.health.v1.Health", "sluice.v1.StagingService"} <= names
    assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= names
    for symbol, reply in zip(symbols, replies[1:], strict=True):
        assert not reply.HasField("error_response"), reply.error_response
        found = reply.file_descriptor_response.file_descriptor_proto
        files = [FileDescriptorProto.FromString(data) for data in found]
        package, service = symbol.rsplit(".", 1)
        assert any(f.package == package and service in [s.name for s in f.service] for f in files)


def test_batch_ttl_comes_from_the_environment_value() -> None:
    assert _batch_ttl("") == timedelta(days=7)
    assert _batch_ttl("0.5") == timedelta(hours=12)
    for bad in ("0", "-1", "soon"):
        with pytest.raises(SystemExit):
            _batch_ttl(bad)
