"""Staging videos: probed on arrival, refused with a reason when not decodable, listed with their
facts, with a frame index beside each one; driven through the CLI and over gRPC against a real
staging service (Postgres, NATS, a local object store) and real ffmpeg-made videos."""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
from collections.abc import Awaitable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from sluice import storage
from sluice.cli.main import main
from sluice.ids import is_reserved_name, is_video_name
from sluice.storage import ObjectStore
from sluice.v1 import common_pb2, staging_pb2
from sluice.video.frame_index import FrameIndex, frame_index_name
from sluice.video.probe import probe_video
from tests.staging_server import Launch, Staging
from tests.test_staging import (
    IMAGES,
    VIDEOS,
    content,
    create,
    download,
    jpeg,
    store_files,
    upload,
    upload_chunks,
)
from tests.video_fixtures import make_bad_videos, make_test_video

ODD_NAMES = ("a b#1::x.mp4", "ünï/日本 [1].mp4")
REFUSED = {
    "empty.mp4": "not a decodable video: empty file",
    "notes.mp4": "not a decodable video: not a video: FFmpeg cannot read it",
    "audio.mp4": "not a decodable video: not a video: it has no video stream (audio only)",
    "truncated-header.mp4": "not a decodable video: ",
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Good videos of several kinds, by their name in the batch."""
    folder = tmp_path_factory.mktemp("clips")
    videos = {
        "plain.mp4": make_test_video(folder / "plain.mp4", width=160, height=120, fps=25, duration_s=2),
        "day/rotated.mov": make_test_video(
            folder / "day/rotated.mov", width=160, height=96, fps=30, duration_s=1, rotation=90
        ),
        "vfr.mkv": make_test_video(folder / "vfr.mkv", width=96, height=64, fps=20, duration_s=3, vfr=True),
        "wide.mp4": make_test_video(
            folder / "wide.mp4", width=120, height=90, fps=10, duration_s=1, sar=Fraction(4, 3)
        ),
        "odd.webm": make_test_video(
            folder / "odd.webm", width=65, height=47, fps=12, duration_s=1, codec="libvpx-vp9"
        ),
    }
    for name in ODD_NAMES:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        videos[name] = Path(shutil.copyfile(videos["plain.mp4"], target))
    return videos


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_bad_videos(tmp_path_factory.mktemp("bad"))


def video_facts(video: common_pb2.VideoInfo) -> dict[str, object]:
    return {
        "duration_s": round(video.duration_s, 3),
        "frame_count": video.frame_count,
        "size": (video.width, video.height),
        "fps": round(video.fps, 3),
        "rotation": video.rotation,
        "codec": video.codec,
    }


def cli(staging: Staging, key: str, *args: str) -> Awaitable[int]:
    connection = ["--api-key", key, "--staging-address", f"127.0.0.1:{staging.running.port}"]
    return asyncio.to_thread(main, ["data-staging", *args, *connection])


async def test_the_cli_stages_a_folder_of_videos(
    launch: Launch,
    api_keys: tuple[Path, dict[str, str]],
    alpha: Any,
    clips: dict[str, Path],
    bad_videos: dict[str, Path],
    store_url: str,
    tmp_path: Path,
    capsys: Any,
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    staging = await launch(spool_dir=spool)
    key = api_keys[1]["alpha"]
    folder = tmp_path / "videos"
    good = {**clips, "cut.mp4": bad_videos["cut.mp4"]}  # probes fine: broken only when decoded
    for name, path in [*good.items(), *((n, bad_videos[n]) for n in REFUSED)]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / name)
    (folder / "photo.jpg").write_bytes(jpeg(1))
    (folder / "notes.txt").write_text("not a video")

    assert await cli(staging, key, "create-batch-of-videos", "--videos-dir", str(folder), "-b", "clips") == 0
    out = capsys.readouterr().out
    assert "skipped (not a video): photo.jpg" in out and "skipped (not a video): notes.txt" in out
    for name, reason in REFUSED.items():
        assert re.search(rf"^rejected: {re.escape(name)}: {re.escape(reason)}", out, re.M), out
    assert f"batch clips: {len(good)} uploaded, 0 already staged, {len(REFUSED) + 2} skipped" in out

    # Listed back with what probing found; refused files are neither listed nor stored.
    listed = {o.name: o for o in await content(staging, alpha, "clips", all_parts=True)}
    assert set(listed) == set(good)
    for name, path in good.items():
        probe = probe_video(path)
        video = listed[name].video
        assert video.frame_index_name == frame_index_name(name)
        expected = common_pb2.VideoInfo()
        expected.CopyFrom(probe.info)
        expected.frame_index_name = frame_index_name(name)
        assert video == expected, name
        assert listed[name].size_bytes == path.stat().st_size
    facts = {name: video_facts(o.video) for name, o in listed.items()}
    assert facts["plain.mp4"] == {
        "duration_s": 2.0,
        "frame_count": 50,
        "size": (160, 120),
        "fps": 25.0,
        "rotation": 0,
        "codec": "h264",
    }
    assert facts["day/rotated.mov"]["size"] == (96, 160)  # turned: displayed upright
    assert facts["day/rotated.mov"]["rotation"] in (90, 270)
    assert facts["day/rotated.mov"]["frame_count"] == 30
    assert facts["wide.mp4"]["size"] == (160, 90)  # 4:3 pixels
    assert facts["odd.webm"]["size"] == (65, 47) and facts["odd.webm"]["codec"] == "vp9"
    assert listed["vfr.mkv"].video.variable_frame_rate
    assert not listed["plain.mp4"].video.variable_frame_rate
    assert all(facts[name] == facts["plain.mp4"] for name in ODD_NAMES)

    # Each video and its frame index are stored, nothing else; nothing is left spooled.
    root = ObjectStore(store_url).batch_url("alpha", "clips")
    assert store_files(store_url) == {f"alpha/clips/{n}" for n in good} | {
        f"alpha/clips/{frame_index_name(n)}" for n in good
    }
    for name in good:
        index = FrameIndex.from_json_bytes(storage.read_bytes(root, frame_index_name(name)))
        assert len(index) == listed[name].video.frame_count
        assert index == probe_video(good[name]).index
    assert list(spool.iterdir()) == []

    # Odd names read back as themselves.
    for name in ODD_NAMES:
        received, _ = await download(staging, alpha, "clips", [name])
        assert received == {name: clips[name].read_bytes()}

    # A second run sends only what is missing: the refused files again, nothing stored.
    assert await cli(staging, key, "create-batch-of-videos", "--videos-dir", str(folder), "-b", "clips") == 0
    out = capsys.readouterr().out
    assert f"batch clips: 0 uploaded, {len(good)} already staged, {len(REFUSED) + 2} skipped" in out
    assert f"{len(good)} videos" in out

    assert await cli(staging, key, "list-batch-content", "-b", "clips") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "BYTES",
        "PART",
        "DURATION",
        "FRAMES",
        "SIZE",
        "FPS",
        "CODEC",
        "ROTATION",
    ]
    rows = {line.split("  ")[0]: line.split()[-7:] for line in lines[1:]}
    assert len(lines) == len(good) + 1
    assert rows["plain.mp4"] == ["0", "0:02.00", "50", "160x120", "25", "h264", "0"]
    assert rows["vfr.mkv"][4:6] == ["(vfr)", "h264"]
    assert any(line.startswith(ODD_NAMES[0] + "  ") for line in lines)

    assert await cli(staging, key, "show-batch-details", "-b", "clips") == 0
    details = capsys.readouterr().out
    frames = sum(o.video.frame_count for o in listed.values())
    assert re.search(rf"^frames\s+{frames}$", details, re.M), details
    seconds = sum(o.video.duration_s for o in listed.values())
    assert re.search(rf"^duration\s+0:{seconds:05.2f}$", details, re.M), details


async def test_an_images_batch_lists_as_before(
    launch: Launch, api_keys: tuple[Path, dict[str, str]], alpha: Any, capsys: Any
) -> None:
    staging = await launch()
    await create(staging, alpha, "pics")
    await upload(staging, alpha, "pics", [("a.jpg", jpeg(1))])
    assert await cli(staging, api_keys[1]["alpha"], "list-batch-content", "-b", "pics") == 0
    assert capsys.readouterr().out == f"a.jpg\t{len(jpeg(1))}\tpart 0\n"


async def test_what_is_not_a_video_is_refused_and_never_stored(
    launch: Launch, alpha: Any, clips: dict[str, Path], store_url: str, tmp_path: Path
) -> None:
    staging = await launch(spool_dir=tmp_path, max_video_bytes=200_000)
    video = clips["plain.mp4"].read_bytes()
    await create(staging, alpha, "clips", VIDEOS)
    await create(staging, alpha, "pics", IMAGES)
    reserved = [".sluice/frames/a.mp4.json", ".sluice/a.mp4", "./.sluice/b.mp4"]
    summary = await upload(
        staging,
        alpha,
        "clips",
        [
            ("photo.jpg", jpeg(1)),
            *((name, video) for name in reserved),
            ("big.mp4", b"\x00" * 250_000),
        ],
    )
    assert summary.files_stored == 0
    reasons = {r.file_name: r.reason for r in summary.rejected}
    assert reasons["photo.jpg"] == "not a video: .jpg files are not staged"
    assert all("reserved" in reasons[name] and "'.sluice/'" in reasons[name] for name in reserved)
    assert reasons["big.mp4"] == "too large: files over 200000 bytes are not staged"

    summary = await upload(staging, alpha, "pics", [(".sluice/x.jpg", jpeg(3))])
    assert summary.files_stored == 0 and "reserved" in summary.rejected[0].reason

    # A video whose last chunk never comes, before another file and at the end of the stream.
    chunks = upload_chunks("clips", [("cut-off.mp4", video)])[:-1]
    chunks += upload_chunks("clips", [("after.jpg", jpeg(4))])
    chunks += upload_chunks("clips", [("tail.mp4", video)])[:-1]
    summary = await staging.stub.UploadFiles(iter(chunks), metadata=alpha)
    assert summary.files_stored == 0
    assert {r.file_name: r.reason.split(":")[0] for r in summary.rejected} == {
        "cut-off.mp4": "incomplete",
        "after.jpg": "not a video",
        "tail.mp4": "incomplete",
    }

    assert await content(staging, alpha, "clips", all_parts=True) == []
    assert await content(staging, alpha, "pics", all_parts=True) == []
    assert store_files(store_url) == set()
    assert list(tmp_path.glob("sluice-upload-*")) == []
    assert is_reserved_name(".sluice/x") and not is_reserved_name("a/.sluice/x.mp4")
    assert not is_reserved_name(".sluicex/a.mp4")
    assert is_video_name("A.M2TS") and not is_video_name("a.jpg")


async def test_a_video_uploaded_again_is_probed_again_and_replaced(
    launch: Launch, alpha: Any, clips: dict[str, Path], store_url: str
) -> None:
    staging = await launch()
    await create(staging, alpha, "again", VIDEOS)
    first, second = clips["plain.mp4"].read_bytes(), clips["vfr.mkv"].read_bytes()
    assert (await upload(staging, alpha, "again", [("clip.mp4", first)])).files_stored == 1
    [before] = await content(staging, alpha, "again")
    assert before.video.frame_count == 50

    assert (await upload(staging, alpha, "again", [("clip.mp4", second)])).files_stored == 1
    [after] = await content(staging, alpha, "again")
    expected = probe_video(clips["vfr.mkv"])
    assert after.video.frame_count == expected.info.frame_count != 50
    assert after.video.variable_frame_rate and after.size_bytes == len(second)
    root = ObjectStore(store_url).batch_url("alpha", "again")
    assert storage.read_bytes(root, "clip.mp4") == second
    index = FrameIndex.from_json_bytes(storage.read_bytes(root, frame_index_name("clip.mp4")))
    assert index == expected.index
    batch = await staging.stub.GetBatch(staging_pb2.GetBatchRequest(batch_id="again"), metadata=alpha)
    assert (batch.object_count, batch.total_bytes) == (1, len(second))

    # A refused upload of the name keeps what was staged.
    summary = await upload(staging, alpha, "again", [("clip.mp4", b"not a video")])
    assert summary.files_stored == 0
    assert [o.video.frame_count for o in await content(staging, alpha, "again")] == [
        expected.info.frame_count
    ]


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_write_file_stores_a_local_file_under_odd_names(kind: str, tmp_path: Path) -> None:
    if kind == "file":
        folder_url = f"file://{tmp_path}/objects/alpha/odd"
    else:
        folder_url = f"memory://sluice-{secrets.token_hex(4)}/alpha/odd"
    source = tmp_path / "source.bin"
    source.write_bytes(b"video bytes" * 1000)
    names = ["scan::001.mp4", "a b#1?.mp4", "[x]*.mp4", "ünï/日本.mp4"]
    for name in names:
        storage.write_file(folder_url, name, source)
    assert storage.list_objects(folder_url) == {name: 11000 for name in names}
    assert all(storage.read_bytes(folder_url, name) == source.read_bytes() for name in names)


def test_a_failed_write_file_leaves_no_temporary(tmp_path: Path) -> None:
    folder_url = f"file://{tmp_path}/objects"
    source = tmp_path / "source.bin"
    source.write_bytes(b"1")
    storage.write_file(folder_url, "day/a.mov", source)
    with pytest.raises(IsADirectoryError):
        storage.write_file(folder_url, "day", source)
    assert storage.list_objects(folder_url) == {"day/a.mov": 1}
    assert sorted(p.name for p in (tmp_path / "objects").iterdir()) == ["day"]
