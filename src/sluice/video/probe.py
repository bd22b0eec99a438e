"""Probing a video: its facts (`VideoInfo`) and its frame index, or a reason to refuse it.

`probe_video` opens the file with FFmpeg's libraries (PyAV), decodes only the first frame of the
first video stream (to learn its rotation and prove it decodes) and demuxes every other packet
without decoding, collecting each frame's presentation timestamp. Memory stays bounded by the
number of frames (8 bytes each), whatever the file's size.

A file that is not a usable video raises `NotAVideo`, whose text is one line for people:

- "empty file"
- "not a video: FFmpeg cannot read it (<FFmpeg's error>)"
- "not a video: it has no video stream (audio only)" (or without the parenthesis)
- "cannot decode its <codec> video: <why>"
- "truncated: no video frames"
"""

from __future__ import annotations

import math
import os
from array import array
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from sluice.v1 import common_pb2
from sluice.video.frame_index import FrameIndex

_FIRST_FRAME_PACKET_LIMIT = 64
"""Packets fed to the decoder, at most, before a video that yields no frame is refused."""


class NotAVideo(ValueError):
    """The file is not a video Sluice can process; `str()` is the reason, one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(" ".join(reason.split()))

    @property
    def reason(self) -> str:
        return str(self)


@dataclass(frozen=True)
class VideoProbe:
    """What probing found: the video's facts and every frame's timestamp."""

    info: common_pb2.VideoInfo
    index: FrameIndex


def _short_error(error: BaseException) -> str:
    """FFmpeg's message without the file name PyAV appends."""
    message = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(str(message).split())


def _normal_rotation(degrees: float | None) -> int:
    if not degrees or not math.isfinite(degrees):
        return 0
    return (round(degrees / 90.0) * 90) % 360


def _aspect_ratio(*candidates: Any) -> Fraction:
    for candidate in candidates:
        if candidate is None:
            continue
        try:
            ratio = Fraction(candidate)
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if ratio > 0:
            return ratio
    return Fraction(1)


def _rate(*candidates: Any) -> float:
    for candidate in candidates:
        if candidate is None:
            continue
        try:
            rate = float(candidate)
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if rate > 0 and math.isfinite(rate):
            return rate
    return 0.0


def _is_variable_rate(pts: np.ndarray) -> bool:
    """Whether intervals between frames differ from the typical one by > 1 tick and > 10%."""
    if pts.size < 3:
        return False
    intervals = np.diff(pts)
    typical = float(np.median(intervals))
    deviation = np.abs(intervals.astype(np.float64) - typical)
    return bool(np.any((deviation > 1.0) & (deviation > 0.1 * typical)))


# FFmpeg's readers of still images (besides the `*_pipe` ones): a picture named .mp4 is refused.
_IMAGE_READERS = frozenset({"image2", "png", "bmp", "webp", "tiff", "jpeg", "mjpeg_2000"})


def probe_video(path: str | os.PathLike[str]) -> VideoProbe:
    """The video's facts and frame index; raises NotAVideo with a reason for people.

    A missing or unreadable path raises the OSError it causes, not NotAVideo. `frame_index_name`
    is left empty: only the caller knows the object's name (`frame_index.frame_index_name`).
    """
    import av  # PyAV loads FFmpeg's libraries: only when a video is probed

    filename = os.fspath(path)
    if os.stat(filename).st_size == 0:
        raise NotAVideo("empty file")
    try:
        container = av.open(filename, mode="r")
    except av.FFmpegError as error:
        if isinstance(error, OSError) and not isinstance(error, av.InvalidDataError):
            raise
        raise NotAVideo(f"not a video: FFmpeg cannot read it ({_short_error(error)})") from error
    with container:
        reader = container.format.name or ""
        if reader.endswith("_pipe") or reader.split(",")[0] in _IMAGE_READERS:
            kind = reader.split(",")[0].removesuffix("_pipe")
            raise NotAVideo(f"not a video: it is a {kind} image")
        if not container.streams.video:
            has_audio = bool(container.streams.audio)
            raise NotAVideo("not a video: it has no video stream" + (" (audio only)" if has_audio else ""))
        stream = container.streams.video[0]
        codec_context = stream.codec_context
        codec = getattr(codec_context, "name", None) or "unknown"
        if codec_context is None:
            raise NotAVideo(f"cannot decode its {codec} video: FFmpeg has no decoder for it")
        if stream.time_base is None or stream.time_base <= 0:
            raise NotAVideo(f"cannot decode its {codec} video: the stream has no time base")
        time_base = Fraction(stream.time_base)

        timestamps = array("q")
        last_pts: int | None = None  # the latest presentation timestamp seen, and its duration
        last_duration_ticks = 0
        first_frame: Any = None
        decode_error: str | None = None
        packets_tried = 0
        try:
            for packet in container.demux(stream):
                if first_frame is None and packets_tried < _FIRST_FRAME_PACKET_LIMIT and packet.size:
                    packets_tried += 1
                    try:
                        frames = codec_context.decode(packet)
                    except av.FFmpegError as error:
                        decode_error = _short_error(error)
                        frames = []
                    if frames:
                        first_frame = frames[0]
                if packet.pts is None or not packet.size:
                    continue
                timestamps.append(packet.pts)
                if last_pts is None or packet.pts >= last_pts:
                    last_pts = packet.pts
                    last_duration_ticks = int(packet.duration or 0)
        except av.FFmpegError:
            pass  # a broken file: what was read before the damage is the index
        if first_frame is None and timestamps:
            try:
                frames = codec_context.decode(None)  # flush: decoders with a delay
                if frames:
                    first_frame = frames[0]
            except av.FFmpegError as error:
                decode_error = _short_error(error)
        if not timestamps:
            raise NotAVideo("truncated: no video frames")
        if first_frame is None:
            raise NotAVideo(f"cannot decode its {codec} video: {decode_error or 'no frame could be decoded'}")

        pts = np.sort(np.frombuffer(timestamps, dtype=np.int64))
        index = FrameIndex(time_base=time_base, pts=pts)
        stream_rate = _rate(stream.average_rate, stream.guessed_rate, stream.base_rate)
        ticks = float(time_base)
        if last_duration_ticks <= 0 and pts.size > 1:
            last_duration_ticks = int(np.median(np.diff(pts)))
        if last_duration_ticks > 0:
            last_duration_s = last_duration_ticks * ticks
        elif stream_rate > 0:
            last_duration_s = 1.0 / stream_rate
        else:
            last_duration_s = 0.0
        duration_s = float(pts[-1] - pts[0]) * ticks + last_duration_s
        fps = pts.size / duration_s if duration_s > 0 else stream_rate

        coded_width = int(first_frame.width or codec_context.width)
        coded_height = int(first_frame.height or codec_context.height)
        sar = _aspect_ratio(
            stream.sample_aspect_ratio,
            codec_context.sample_aspect_ratio,
            getattr(first_frame, "sample_aspect_ratio", None),
        )
        rotation = _normal_rotation(getattr(first_frame, "rotation", 0))
        display_width = max(1, round(coded_width * sar))
        display_height = coded_height
        if rotation in (90, 270):
            display_width, display_height = display_height, display_width

        info = common_pb2.VideoInfo(
            duration_s=duration_s,
            frame_count=int(pts.size),
            width=display_width,
            height=display_height,
            fps=fps,
            codec=codec,
            rotation=rotation,
            coded_width=coded_width,
            coded_height=coded_height,
            sample_aspect_ratio=f"{sar.numerator}:{sar.denominator}",
            variable_frame_rate=_is_variable_rate(pts),
            start_time_s=index.start_s,
        )
        return VideoProbe(info=info, index=index)
