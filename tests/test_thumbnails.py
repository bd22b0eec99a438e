"""GetThumbnails: previews of a batch's objects from a real staging service (Postgres, NATS, a local
object store), checked by decoding them and comparing them with the originals: real photographs,
and the first frame of a real ffmpeg-made video as ffmpeg itself shows it."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import grpc
import numpy as np
import pytest

from sluice.v1 import staging_pb2
from sluice.video.tools import ffmpeg_exe
from sluice_staging.thumbnails import make_thumbnail
from tests.images import data_dir, photographs
from tests.staging_server import Launch, Staging
from tests.test_staging import IMAGES, VIDEOS, create, rpc_error, upload
from tests.video_fixtures import make_test_video

ODD_NAME = "day/odd [1]::x.png"  # fsspec would read '::' and '[1]' in a URL; the store must not


@pytest.fixture
async def staging(launch: Launch) -> Staging:
    return await launch()


def encoded(image: np.ndarray, extension: str) -> bytes:
    ok, data = cv2.imencode(extension, image)
    assert ok
    return data.tobytes()


def decoded(thumbnail: staging_pb2.Thumbnail) -> np.ndarray:
    """The preview's pixels; its width and height fields must be the JPEG's own."""
    assert thumbnail.error == "", thumbnail.error
    image = cv2.imdecode(np.frombuffer(thumbnail.jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, thumbnail.name
    assert (thumbnail.width, thumbnail.height) == (image.shape[1], image.shape[0])
    return image


def difference(preview: np.ndarray, original: np.ndarray) -> float:
    """Mean absolute difference per channel, the original scaled to the preview's size."""
    scaled = cv2.resize(original, (preview.shape[1], preview.shape[0]), interpolation=cv2.INTER_AREA)
    return float(np.abs(scaled.astype(np.int16) - preview.astype(np.int16)).mean())


async def get(
    staging: Staging, metadata: Sequence[tuple[str, str]], batch_id: str, names: Sequence[str], max_side: int
) -> list[staging_pb2.Thumbnail]:
    request = staging_pb2.GetThumbnailsRequest(batch_id=batch_id, names=list(names), max_side=max_side)
    response = await staging.stub.GetThumbnails(request, metadata=metadata, timeout=30)
    return list(response.thumbnails)


async def test_photographs_are_scaled_to_max_side_and_bad_objects_say_why(
    staging: Staging, alpha: Any
) -> None:
    rocket_jpeg = (data_dir() / "rocket.jpg").read_bytes()  # 640 x 427: decoded at 1/8 for 64 px
    rocket = cv2.imdecode(np.frombuffer(rocket_jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    chelsea = photographs()[1]
    tiny = cv2.resize(photographs()[2], (48, 32), interpolation=cv2.INTER_AREA)
    await create(staging, alpha, "photos", IMAGES)
    files = {
        "rocket.jpg": rocket_jpeg,
        ODD_NAME: encoded(chelsea, ".png"),
        "tiny.jpg": encoded(tiny, ".jpg"),
        "broken.jpg": b"\xff\xd8\xff\xe0 these bytes are no picture " * 20,
    }
    summary = await upload(staging, alpha, "photos", files.items())
    assert summary.files_stored == 4, summary

    names = ["rocket.jpg", "absent.jpg", ODD_NAME, "broken.jpg", "tiny.jpg", "rocket.jpg"]
    thumbnails = await get(staging, alpha, "photos", names, max_side=64)
    assert [t.name for t in thumbnails] == names
    assert thumbnails[1].error == "not found" and not thumbnails[1].jpeg
    assert thumbnails[3].error.startswith("undecodable") and not thumbnails[3].jpeg
    previews = {t.name: decoded(t) for t in thumbnails if not t.error}
    assert previews["rocket.jpg"].shape[:2] == (43, 64)
    assert previews[ODD_NAME].shape[:2] == (43, 64)  # 451 x 300
    assert previews["tiny.jpg"].shape[:2] == (32, 48)  # smaller than max_side: kept as it is
    for name, original in (("rocket.jpg", rocket), (ODD_NAME, chelsea), ("tiny.jpg", tiny)):
        assert difference(previews[name], original) < 12, name  # the picture itself, JPEG-blurred
    assert difference(previews["rocket.jpg"], chelsea) > 30  # ...and not any other picture

    default = await get(staging, alpha, "photos", ["rocket.jpg"], max_side=0)
    assert decoded(default[0]).shape[:2] == (171, 256)
    assert await get(staging, alpha, "photos", [], max_side=0) == []


async def test_a_video_gives_its_first_frame_as_displayed(
    staging: Staging, alpha: Any, tmp_path: Path
) -> None:
    # coded 160 x 120, displayed turned a quarter: the preview is upright, 75 x 100
    clip = make_test_video(tmp_path / "turned.mp4", width=160, height=120, fps=10, duration_s=1, rotation=90)
    await create(staging, alpha, "clips", VIDEOS)
    summary = await upload(staging, alpha, "clips", [("turned.mp4", clip.read_bytes())])
    assert summary.files_stored == 1, summary

    (thumbnail,) = await get(staging, alpha, "clips", ["turned.mp4"], max_side=100)
    preview = decoded(thumbnail)
    assert preview.shape[:2] == (100, 75)
    first, last = (ffmpeg_frame(clip, at_s) for at_s in (0.0, 0.9))
    assert first.shape[:2] == (160, 120)  # ffmpeg turns it as it is displayed
    assert difference(preview, first) < 10
    assert difference(preview, last) > 2 * difference(preview, first)  # the first frame, not a later one


def ffmpeg_frame(clip: Path, at_s: float) -> np.ndarray:
    """The frame ffmpeg shows at `at_s`, decoded by ffmpeg itself (autorotated)."""
    command = [ffmpeg_exe(), "-v", "error", "-ss", str(at_s), "-i", str(clip), "-frames:v", "1"]
    completed = subprocess.run(
        [*command, "-f", "image2pipe", "-vcodec", "png", "-"], capture_output=True, check=True
    )
    image = cv2.imdecode(np.frombuffer(completed.stdout, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


async def test_refusals(launch: Launch, alpha: Any, beta: Any) -> None:
    staging = await launch(batch_ttl=timedelta(0))  # every batch is expired as soon as it exists
    await create(staging, alpha, "gone", IMAGES)
    for metadata, batch_id, names, max_side, code, details in (
        (beta, "gone", ["a.jpg"], 0, grpc.StatusCode.NOT_FOUND, "batch 'gone' not found"),
        (alpha, "never", ["a.jpg"], 0, grpc.StatusCode.NOT_FOUND, "batch 'never' not found"),
        (alpha, "gone", ["a.jpg"], 0, grpc.StatusCode.FAILED_PRECONDITION, "batch 'gone' expired on "),
        (alpha, "gone", [f"{i}.jpg" for i in range(101)], 0, grpc.StatusCode.INVALID_ARGUMENT, "at most 100"),
        (alpha, "gone", ["a.jpg"], 1025, grpc.StatusCode.INVALID_ARGUMENT, "max_side must be between 1"),
        (alpha, "gone", ["a.jpg"], -1, grpc.StatusCode.INVALID_ARGUMENT, "max_side must be between 1"),
        (alpha, "../up", ["a.jpg"], 0, grpc.StatusCode.INVALID_ARGUMENT, "invalid batch id"),
    ):
        error = await rpc_error(get(staging, metadata, batch_id, names, max_side))
        assert error.code() == code, (batch_id, max_side, error.details())
        assert details in (error.details() or ""), error.details()


def test_an_image_too_large_to_preview_is_not_read(tmp_path: Path) -> None:
    """A 60 MiB image gets an error and is never read (three decoded at once could hold GBs)."""
    (tmp_path / "huge.png").write_bytes(b"not read")  # the recorded size is what counts
    big = make_thumbnail(tmp_path.as_uri(), "huge.png", 64, size_bytes=60 * 2**20)
    assert (big.error, big.jpeg) == ("too large to preview (60 MiB)", b"")
    ok, small = cv2.imencode(".png", photographs()[1])
    assert ok
    (tmp_path / "small.png").write_bytes(small.tobytes())
    assert make_thumbnail(tmp_path.as_uri(), "small.png", 64, size_bytes=len(small)).width == 64
