"""Staging records uploaded files in groups (one transaction per group) and the CLI sends several
streams at once: what each file becomes must not change (stored once, refused with its reason,
skipped when already staged), only how fast it happens."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sluice import db
from sluice.cli.main import main
from sluice.messaging import event_subject, events_stream
from sluice.v1 import events_pb2, staging_pb2
from sluice_staging.repository import NewObject, Repository
from sluice_staging.server import SCHEMA
from sluice_staging.upload import GROUP_FILES
from tests.staging_server import Launch, Staging
from tests.test_staging import content, create, jpeg, store_files, upload

PHOTO = jpeg(0, size=8)  # every file of these tests: staging checks names, not pixels


@pytest.fixture
async def staging(launch: Launch) -> Staging:
    return await launch()


async def test_a_long_stream_records_the_good_files_and_reports_each_bad_one(
    launch: Launch, alpha: Any, store_url: str
) -> None:
    staging = await launch(part_size=100)
    await create(staging, alpha, "long")
    await upload(staging, alpha, "long", [("day.jpg/first.jpg", PHOTO)])
    names = [f"img_{i:03d}.jpg" for i in range(GROUP_FILES + 100)]
    bad = {  # at stream position: the name sent, and how its refusal starts
        10: ("../up.jpg", "invalid file name"),
        60: ("notes.txt", "not an image"),
        120: (".sluice/own.jpg", "reserved name"),
        150: ("day.jpg", "name clash"),  # a folder of the batch already
        205: ("cam.jpg", ""),  # stored ...
        206: ("cam.jpg/inside.jpg", "name clash"),  # ... so it cannot be a folder too
    }
    sent = list(names)
    for position, (name, _) in sorted(bad.items()):
        sent.insert(position, name)
    summary = await upload(staging, alpha, "long", [(name, PHOTO) for name in sent])

    good = sorted([*names, "cam.jpg", "day.jpg/first.jpg"])
    refused = [(name, reason) for _, (name, reason) in sorted(bad.items()) if reason]
    assert summary.files_stored == len(names) + 1
    assert [r.file_name for r in summary.rejected] == [name for name, _ in refused]  # stream order
    for rejected, (_, reason) in zip(summary.rejected, refused, strict=True):
        assert reason in rejected.reason.lower(), rejected
    assert [o.name for o in await content(staging, alpha, "long", all_parts=True)] == good
    assert store_files(store_url) == {f"alpha/long/{name}" for name in good}
    batch = await staging.stub.GetBatch(staging_pb2.GetBatchRequest(batch_id="long"), metadata=alpha)
    assert batch.object_count == len(good)
    assert [p.object_count for p in batch.parts] == [100, 100, 100, 2]


async def test_two_streams_at_once_record_every_file_once(launch: Launch, alpha: Any) -> None:
    staging = await launch(part_size=64)
    await create(staging, alpha, "pair")
    shared = [f"both/{i:02d}.jpg" for i in range(20)]  # sent by both streams
    streams = [[f"s{s}/{i:03d}.jpg" for i in range(150)] + shared for s in range(2)]
    summaries = await asyncio.gather(
        *(upload(staging, alpha, "pair", [(name, PHOTO) for name in names]) for names in streams)
    )
    assert [(s.files_stored, list(s.rejected)) for s in summaries] == [(170, []), (170, [])]
    listed = await content(staging, alpha, "pair", all_parts=True)
    expected = sorted({name for names in streams for name in names})
    assert [o.name for o in listed] == expected
    batch = await staging.stub.GetBatch(staging_pb2.GetBatchRequest(batch_id="pair"), metadata=alpha)
    assert batch.object_count == len(expected) == 320
    assert [p.object_count for p in batch.parts] == [64] * 5  # no part overfilled, none skipped


async def test_a_group_is_checked_for_clashes_within_itself_and_with_the_batch(database_url: str) -> None:
    """What an object store without folders relies on (a local store refuses these writes too)."""
    pool = await db.connect(database_url)
    try:
        await db.migrate(pool, SCHEMA, "sluice_staging")
        await _new_batch(pool, "b")
        repository = Repository(pool)

        def group(*names: str) -> list[NewObject]:
            return [NewObject(name, len(name), "image/jpeg") for name in names]

        first = await repository.put_objects("alpha", "b", group("a.jpg", "f/x.jpg", "f/y.jpg"), 2)
        assert first is not None
        assert (first.parts, first.clashing) == ({"a.jpg": 0, "f/x.jpg": 0, "f/y.jpg": 1}, set())
        second = await repository.put_objects(
            "alpha",
            "b",
            group("a.jpg/in.jpg", "f", "f/x.jpg", "n.jpg", "n.jpg/in.jpg", "n.jpg", "z/deep/w.jpg"),
            2,
        )
        assert second is not None
        assert second.clashing == {"a.jpg/in.jpg", "f", "n.jpg/in.jpg"}
        assert second.parts == {"f/x.jpg": 0, "n.jpg": 1, "z/deep/w.jpg": 2}  # f/x.jpg kept its part
        count = await pool.fetchval("SELECT object_count FROM staging.batches WHERE batch_id = 'b'")
        assert count == 5
        assert await repository.put_objects("alpha", "gone", group("x.jpg"), 2) is None
    finally:
        await pool.close()


async def _new_batch(pool: asyncpg.Pool, batch_id: str) -> None:
    await pool.execute(
        "INSERT INTO staging.batches (workspace, batch_id, type, expires_at) "
        "VALUES ('alpha', $1, 'images', now() + interval '1 day')",
        batch_id,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """450 tiny photos (so the CLI spreads them over its 4 streams) and one name that clashes."""
    photos = tmp_path / "photos"
    for i in range(450):
        path = photos / f"cam{i % 3}" / f"{i:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(PHOTO)
    (photos / "taken.jpg").mkdir()
    (photos / "taken.jpg" / "inside.jpg").write_bytes(PHOTO)
    return photos


async def test_the_cli_uploads_in_parallel_streams_and_resumes(
    staging: Staging, api_keys: tuple[Path, dict[str, str]], alpha: Any, folder: Path, capsys: Any
) -> None:
    await create(staging, alpha, "cli")
    await upload(staging, alpha, "cli", [("taken.jpg", PHOTO), ("cam0/000.jpg", PHOTO)])
    connection = ["--api-key", api_keys[1]["alpha"], "--staging-address", f"127.0.0.1:{staging.running.port}"]
    command = ["data-staging", "create-batch-of-images", "--images-dir", str(folder), "--batch-id", "cli"]

    assert await asyncio.to_thread(main, [*command, *connection]) == 0
    out = capsys.readouterr().out
    assert "rejected: taken.jpg/inside.jpg: name clash" in out
    assert "batch cli: 449 uploaded, 1 already staged, 1 skipped; 451 images" in out
    names = {o.name for o in await content(staging, alpha, "cli", all_parts=True)}
    assert len(names) == 451 and "taken.jpg/inside.jpg" not in names

    assert await asyncio.to_thread(main, [*command, *connection]) == 0  # again: nothing new to send
    assert "batch cli: 0 uploaded, 450 already staged, 1 skipped; 451 images" in capsys.readouterr().out


async def ingested_per_stream(nats_client: Any, batch_id: str) -> list[str]:
    """The batch_ingested events of `batch_id` (one per upload stream), their messages."""
    js = nats_client.jetstream()
    sub = await js.subscribe(
        event_subject("alpha", "batch_ingested"), stream=events_stream("alpha"), ordered_consumer=True
    )
    messages = []
    while True:
        msg = await sub.next_msg(timeout=5)
        event = events_pb2.Event.FromString(msg.data)
        if event.batch_id == batch_id:
            messages.append(event.message)
        if msg.metadata.num_pending == 0:
            break
    await sub.unsubscribe()
    return messages


async def test_upload_streams_sets_how_many_streams_the_cli_sends(
    staging: Staging, api_keys: tuple[Path, dict[str, str]], folder: Path, nats_client: Any, capsys: Any
) -> None:
    connection = ["--api-key", api_keys[1]["alpha"], "--staging-address", f"127.0.0.1:{staging.running.port}"]
    command = ["data-staging", "create-batch-of-images", "--images-dir", str(folder)]

    assert (
        await asyncio.to_thread(main, [*command, "--batch-id", "one", "--upload-streams", "1", *connection])
        == 0
    )
    assert "batch one: 451 uploaded, 0 already staged, 0 skipped; 451 images" in capsys.readouterr().out
    assert await ingested_per_stream(nats_client, "one") == ["451 files stored"]

    assert await asyncio.to_thread(main, [*command, "--batch-id", "four", *connection]) == 0
    assert "batch four: 451 uploaded" in capsys.readouterr().out
    assert sorted(await ingested_per_stream(nats_client, "four")) == sorted(
        ["113 files stored"] * 3 + ["112 files stored"]
    )

    for bad in ("0", "17", "two"):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--batch-id", "bad", "--upload-streams", bad, *connection])
        assert exit_info.value.code == 2
        assert f"must be a whole number from 1 to 16, not '{bad}'" in capsys.readouterr().err
