"""Previews of a batch's objects (GetThumbnails): small JPEGs for people browsing a batch.

An image is decoded with OpenCV, a big JPEG at 1/2, 1/4 or 1/8 of its size straight from its DCT
(`IMREAD_REDUCED_*`, far cheaper than decoding it whole), and scaled so its longer side is
`max_side` (a smaller one is kept as it is). A video gives its first frame, decoded with PyAV from
the stored object (an fsspec file, so any store works), turned and stretched as it is displayed
(rotation, non-square pixels). Either is encoded as a JPEG of quality 80.

An object that gives no preview (not an image or video, undecodable, missing from the store) gets
a Thumbnail with `error` set; it never fails the call. Decoding runs on a small pool of threads of
its own, so the event loop never decodes and at most `DECODERS` objects are held decoded at once
across every call (a pending preview of a cancelled call is dropped before it starts).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from sluice import storage
from sluice.errors import InvalidArgument
from sluice.ids import is_image_name, is_video_name
from sluice.v1 import staging_pb2
from sluice_staging.repository import ObjectRow

log = logging.getLogger(__name__)

MAX_NAMES = 100
DEFAULT_MAX_SIDE = 256
LARGEST_MAX_SIDE = 1024
JPEG_QUALITY = 80
DECODERS = 3
MAX_IMAGE_BYTES = 48 * 1024 * 1024
_FIRST_FRAME_PACKET_LIMIT = 64
"""Packets fed to the decoder, at most, before a video that yields no frame is given up on."""
_REDUCTIONS = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)
# JPEG's start-of-frame markers (C4, C8 and CC are other segments): they carry the picture's size.
_START_OF_FRAME = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}

_pool = ThreadPoolExecutor(max_workers=DECODERS, thread_name_prefix="thumbnails")


class NoPreview(ValueError):
    """Why an object gives no preview; `str()` is one line for people."""


def preview_side(requested: int) -> int:
    """The longer side of the previews: `requested`, 0 meaning DEFAULT_MAX_SIDE."""
    if requested == 0:
        return DEFAULT_MAX_SIDE
    if requested < 0 or requested > LARGEST_MAX_SIDE:
        raise InvalidArgument(
            f"max_side must be between 1 and {LARGEST_MAX_SIDE} pixels, or 0 for {DEFAULT_MAX_SIDE}; "
            f"got {requested}"
        )
    return requested


def check_names(names: Sequence[str]) -> None:
    """At most MAX_NAMES previews a call: a page of a batch, never the whole of a big one."""
    if len(names) > MAX_NAMES:
        raise InvalidArgument(f"at most {MAX_NAMES} names a call; got {len(names)}")


async def thumbnails(
    folder_url: str, names: Sequence[str], found: Mapping[str, ObjectRow], max_side: int
) -> staging_pb2.GetThumbnailsResponse:
    """One Thumbnail per name, in order (a name asked twice is decoded once); `found` is the
    batch's objects among `names`, so only names the batch holds are ever read."""
    loop = asyncio.get_running_loop()
    unique = list(dict.fromkeys(names))
    made = await asyncio.gather(
        *(
            loop.run_in_executor(_pool, make_thumbnail, folder_url, name, max_side, found[name].size_bytes)
            if name in found
            else _not_found(name)
            for name in unique
        )
    )
    by_name = dict(zip(unique, made, strict=True))
    return staging_pb2.GetThumbnailsResponse(thumbnails=[by_name[name] for name in names])


async def _not_found(name: str) -> staging_pb2.Thumbnail:
    return staging_pb2.Thumbnail(name=name, error="not found")


def make_thumbnail(folder_url: str, name: str, max_side: int, size_bytes: int = 0) -> staging_pb2.Thumbnail:
    """The preview of the stored object `name`, or a Thumbnail saying why there is none. An image
    above MAX_IMAGE_BYTES is not read: three of them decoded at once would hold gigabytes."""
    try:
        if is_image_name(name):
            if size_bytes > MAX_IMAGE_BYTES:
                raise NoPreview(f"too large to preview ({size_bytes / 2**20:.0f} MiB)")
            image = image_preview(storage.read_bytes(folder_url, name), max_side)
        elif is_video_name(name):
            image = video_preview(folder_url, name, max_side)
        else:
            raise NoPreview("not an image or video")
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise NoPreview("the preview could not be encoded")
    except NoPreview as error:
        return staging_pb2.Thumbnail(name=name, error=str(error))
    except FileNotFoundError:
        return staging_pb2.Thumbnail(name=name, error="missing from the object store")
    except OSError:
        log.exception("reading %r under %s for its preview failed", name, folder_url)
        return staging_pb2.Thumbnail(name=name, error="the object store could not be read; try again")
    except Exception as error:  # one broken preview must not fail the others
        log.exception("the preview of %r under %s failed", name, folder_url)
        return staging_pb2.Thumbnail(name=name, error=f"preview failed ({type(error).__name__})")
    height, width = image.shape[:2]
    return staging_pb2.Thumbnail(name=name, jpeg=encoded.tobytes(), width=width, height=height)


def fitted_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is `max_side`; unchanged when already smaller."""
    longer = max(width, height)
    if longer <= max_side:
        return width, height
    scale = max_side / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment, or None when it is not a JPEG."""
    if not data.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack_from(">H", data, at + 2)
        if marker in _START_OF_FRAME:
            if at + 9 > len(data):
                return None
            height, width = struct.unpack_from(">HH", data, at + 5)
            return width, height
        at += 2 + length
    return None


def image_preview(data: bytes, max_side: int) -> np.ndarray:
    """The image, BGR, scaled to fit `max_side` (EXIF orientation applied by OpenCV)."""
    flag = cv2.IMREAD_COLOR
    size = jpeg_size(data)
    if size is not None:
        longer = max(size)
        # the largest reduction that still leaves at least max_side pixels to scale down from
        flag = next((f for factor, f in _REDUCTIONS if longer // factor >= max_side), cv2.IMREAD_COLOR)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
    if image is None or image.size == 0:
        raise NoPreview("undecodable: not an image OpenCV can read")
    height, width = image.shape[:2]
    target = fitted_size(width, height, max_side)
    if target == (width, height):
        return image
    return cv2.resize(image, target, interpolation=cv2.INTER_AREA)


def video_preview(folder_url: str, name: str, max_side: int) -> np.ndarray:
    """The video's first frame, BGR, as it is displayed, scaled to fit `max_side`."""
    import av  # PyAV loads FFmpeg's libraries: only when a video is previewed

    fs, path = storage.object_path(folder_url, name)
    with fs.open(path, "rb") as handle:
        try:
            container = av.open(handle, mode="r")
        except av.FFmpegError as error:
            raise NoPreview(f"undecodable: FFmpeg cannot read it ({_short_error(error)})") from error
        with container:
            if not container.streams.video:
                raise NoPreview("not a video: it has no video stream")
            stream = container.streams.video[0]
            frame = _first_frame(av, container, stream)
            sar = _aspect_ratio(stream.sample_aspect_ratio, getattr(frame, "sample_aspect_ratio", None))
            turn = (round((frame.rotation or 0) / 90.0) * 90) % 360
            display = (max(1, round(frame.width * sar)), frame.height)
            if turn in (90, 270):
                display = (display[1], display[0])
            width, height = fitted_size(*display, max_side)
            if turn in (90, 270):
                width, height = height, width
            scaled = frame.reformat(width=width, height=height, format="bgr24", interpolation="AREA")
            image = scaled.to_ndarray()
    # as FFmpeg's autorotation turns it: 90 counterclockwise, 270 clockwise (np.rot90 turns ccw)
    return np.ascontiguousarray(np.rot90(image, turn // 90)) if turn else image


def _first_frame(av: Any, container: Any, stream: Any) -> Any:
    """The first decoded frame of `stream`, feeding at most _FIRST_FRAME_PACKET_LIMIT packets."""
    codec = getattr(stream.codec_context, "name", None) or "unknown"
    reason = "no frame could be decoded"
    packets = 0
    try:
        for packet in container.demux(stream):
            if not packet.size:
                continue
            packets += 1
            try:
                frames = stream.codec_context.decode(packet)
            except av.FFmpegError as error:
                reason = _short_error(error)
                frames = []
            if frames:
                return frames[0]
            if packets >= _FIRST_FRAME_PACKET_LIMIT:
                break
        frames = stream.codec_context.decode(None)  # flush: decoders with a delay
        if frames:
            return frames[0]
    except av.FFmpegError as error:
        reason = _short_error(error)
    raise NoPreview(f"undecodable: cannot decode its {codec} video ({reason})")


def _aspect_ratio(*candidates: Any) -> Fraction:
    """The first positive sample aspect ratio among `candidates`; square pixels by default."""
    for candidate in candidates:
        try:
            ratio = Fraction(candidate) if candidate is not None else None
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if ratio is not None and ratio > 0:
            return ratio
    return Fraction(1)


def _short_error(error: BaseException) -> str:
    """FFmpeg's message without the file name PyAV appends."""
    message = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(str(message).split())
