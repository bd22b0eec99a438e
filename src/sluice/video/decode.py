"""Decoding a time window of a video into BGR frames, streamed from an ffmpeg process.

`read_frames` starts one ffmpeg process for a window `[start_s, end_s)` (seconds from the
stream's first frame, as in `FrameIndex.times_s`), keeping the source's timestamps (`-copyts`) so
every decoded frame can be named by its index in the video. Inside ffmpeg the frames pass through

    trim (the window in absolute time, half a frame wider on each side)
    -> select (only with max_fps > 0: the first frame of each 1/max_fps bucket, as in `sampling`)
    -> rotation (transpose / hflip,vflip, from `VideoInfo.rotation`; autorotation is off)
    -> scale to VideoInfo's width x height as bgr24 (non-square pixels made square), setsar=1
    -> showinfo (one line per frame on stderr with its integer `pts:`)

so only selected frames are rotated, scaled and converted. A window that starts after 0 is reached
with an input seek (`-ss`, a margin before it, `-noaccurate_seek`: trim makes the cut), checked
against the index and retried from further back when the seek landed too late (`SEEK_MARGINS_S`).

stdout carries exactly width * height * 3 bytes per frame, read one frame at a time (memory is
bounded by one frame); a thread reads stderr, pairing the k-th showinfo line with the k-th frame
of stdout and keeping the lines that report damage (`FrameStream.error`). Frames are then kept
exactly: those whose index time lies in the window and, when sampling, those in
`sampling.selected_frames` of the whole index.
"""

from __future__ import annotations

import contextlib
import math
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from types import TracebackType
from typing import IO, Any

import numpy as np

from sluice.v1 import common_pb2
from sluice.video.frame_index import FrameIndex
from sluice.video.sampling import BUCKET_EPSILON, selected_frames
from sluice.video.tools import ffmpeg_exe

SEEK_MARGINS_S: tuple[float | None, ...] = (1.0, 10.0, 60.0, None)
"""How far before the window ffmpeg's input seek aims, tried in turn (None: no seek, decode from
the start). Containers without an index (MPEG-TS) seek by timestamp search and may land after the
keyframe a window needs; the decoder then drops frames up to the next keyframe. When the first
frame ffmpeg gives is later than the window's first frame, the next margin is tried."""

_SHOWINFO_FRAME = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+)")
_SHOWINFO_TIME_BASE = re.compile(r"config in time_base:\s*(\d+)/(\d+)")
_LOG_LINE = re.compile(
    r"^(?P<contexts>(?:\[[^\]]*\]\s*)*?)\[(?P<level>trace|debug|verbose|info|warning|error|fatal|panic)\]\s*"
    r"(?P<message>.*)$"
)
_CONTEXT = re.compile(r"\[([^\]@]+?)\s*@\s*0x[0-9a-fA-F]+\]")
_DAMAGE = re.compile(
    r"invalid data|partial file|corrupt|conceal|error while decoding|truncat|missing picture|"
    r"non-existing|decode_slice_header|no frame!|invalid nal|out of range|co located POCs",
    re.IGNORECASE,
)
_MAX_ERROR_LINES = 2


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the source, its time from the first frame, its pixels."""

    index: int
    time_s: float
    image: np.ndarray  # BGR uint8, height x width x 3


def _rotation_filters(rotation: int) -> list[tuple[str, tuple[Any, ...]]]:
    """The filters that turn the coded picture as FFmpeg's autorotation does."""
    turn = rotation % 360
    if turn == 90:
        return [("transpose", ("cclock",))]
    if turn == 270:
        return [("transpose", ("clock",))]
    if turn == 180:
        return [("hflip", ()), ("vflip", ())]
    return []


def _sampling_expression(t0: float, max_fps: float) -> str:
    """select's expression: first frame of each bucket floor((t - t0) * max_fps + 1e-6)."""
    offset = f"(t-({t0!r}))"
    previous = f"(prev_selected_t-({t0!r}))"
    rate = repr(float(max_fps))
    epsilon = repr(BUCKET_EPSILON)
    return f"isnan(prev_selected_t)+gt(floor({offset}*{rate}+{epsilon}),floor({previous}*{rate}+{epsilon}))"


def build_command(
    path: str,
    info: common_pb2.VideoInfo,
    index: FrameIndex,
    *,
    start_s: float = 0.0,
    end_s: float = math.inf,
    max_fps: float = 0.0,
    hwaccel: bool = False,
    seek_margin_s: float | None = SEEK_MARGINS_S[0],
) -> list[str]:
    """The ffmpeg command line `read_frames` runs (made with ffmpeg-python).

    `seek_margin_s` is how far before `start_s` the input seek aims (None: no seek).
    """
    import ffmpeg

    t0 = index.start_s
    half_frame = 0.5 / info.fps if info.fps > 0 else 0.02
    input_options: dict[str, Any] = {"noautorotate": None}
    if hwaccel:
        input_options["hwaccel"] = "cuda"
    if start_s > 0 and seek_margin_s is not None and start_s > seek_margin_s:
        # -ss counts from the file's start; -noaccurate_seek leaves the exact cut to trim below.
        input_options["ss"] = repr(start_s - seek_margin_s)
        input_options["noaccurate_seek"] = None
    stream = ffmpeg.input(path, **input_options).video
    trim: dict[str, str] = {}
    if start_s > 0:
        trim["start"] = f"{t0 + start_s - half_frame:.6f}"
    if math.isfinite(end_s):
        trim["end"] = f"{t0 + end_s + half_frame:.6f}"
    if trim:
        stream = stream.filter("trim", **trim)
    if max_fps > 0:
        stream = stream.filter("select", _sampling_expression(t0, max_fps))
    for name, arguments in _rotation_filters(info.rotation):
        stream = stream.filter(name, *arguments)
    stream = (
        stream.filter("scale", info.width, info.height)
        .filter("format", "bgr24")
        .filter("setsar", 1)
        .filter("showinfo", checksum=0)
    )
    output = stream.output("pipe:", format="rawvideo", pix_fmt="bgr24", fps_mode="passthrough")
    global_options = ["-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info", "-copyts"]
    return list(ffmpeg.compile(output, cmd=[ffmpeg_exe(), *global_options]))


class FrameStream:
    """The frames of one `read_frames` call, in order; an iterator and a context manager.

    After iteration ends, `error` says why decoding broke or ended early (None when it did not),
    `frames_read` counts the frames yielded and `unmatched_pts` the frames whose timestamp was
    not in the index (they get the index of the position they would take in it). `hwaccel` turns
    False when CUDA decoding failed at once and the CPU took over.
    """

    def __init__(
        self,
        path: str,
        info: common_pb2.VideoInfo,
        index: FrameIndex,
        *,
        start_s: float = 0.0,
        end_s: float = math.inf,
        max_fps: float = 0.0,
        hwaccel: bool = False,
    ) -> None:
        if info.width <= 0 or info.height <= 0:
            raise ValueError("the video's width and height must be known (probe it first)")
        self.path = path
        self.info = info
        self.index = index
        self.start_s = float(start_s)
        self.end_s = float(end_s)
        self.max_fps = float(max_fps)
        self.hwaccel = bool(hwaccel)
        self.error: str | None = None
        self.frames_read = 0
        self.unmatched_pts = 0
        self._frame_bytes = int(info.width) * int(info.height) * 3
        self._selected: np.ndarray | None = None
        if self.max_fps > 0:
            mask = np.zeros(len(index), dtype=bool)
            mask[selected_frames(index.times_s, self.max_fps)] = True
            self._selected = mask
        self._seek_step = 0
        self._first_expected = int(np.searchsorted(index.times_s, self.start_s, side="left"))
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr_thread: threading.Thread | None = None
        self._condition = threading.Condition()
        self._pts: list[int] = []
        self._time_base: Fraction | None = None
        self._error_lines: list[str] = []
        self._early_error_lines: list[str] = []
        self._stderr_done = False
        self._outputs = 0
        self._finished = False
        self._closed_by_caller = False
        self._start()

    # -- the process ------------------------------------------------------------------------

    @property
    def _seek_margin_s(self) -> float | None:
        return SEEK_MARGINS_S[self._seek_step] if self.start_s > 0 else None

    @property
    def _seeking(self) -> bool:
        margin = self._seek_margin_s
        return margin is not None and self.start_s > margin

    def command(self) -> list[str]:
        """The ffmpeg command line of the current attempt."""
        return build_command(
            self.path,
            self.info,
            self.index,
            start_s=self.start_s,
            end_s=self.end_s,
            max_fps=self.max_fps,
            hwaccel=self.hwaccel,
            seek_margin_s=self._seek_margin_s,
        )

    def _start(self) -> None:
        self._pts = []
        self._time_base = None
        self._error_lines = []
        self._early_error_lines = []
        self._stderr_done = False
        self._outputs = 0
        process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        assert process.stdout is not None and process.stderr is not None
        with contextlib.suppress(Exception):  # a larger pipe means fewer wake-ups (Linux only)
            import fcntl

            fcntl.fcntl(process.stdout.fileno(), 1031, max(1 << 16, min(self._frame_bytes, 1 << 20)))
        self._process = process
        self._stderr_thread = threading.Thread(
            target=self._read_stderr, args=(process.stderr,), name="ffmpeg-stderr", daemon=True
        )
        self._stderr_thread.start()

    def _read_stderr(self, stderr: IO[bytes]) -> None:
        try:
            for raw in iter(stderr.readline, b""):
                self._parse_log_line(raw.decode("utf-8", "replace").rstrip())
        except (OSError, ValueError):
            pass
        finally:
            with self._condition:
                self._stderr_done = True
                self._condition.notify_all()

    def _parse_log_line(self, line: str) -> None:
        if "showinfo" in line:
            frame = _SHOWINFO_FRAME.search(line)
            if frame is not None:
                with self._condition:
                    self._pts.append(int(frame.group(2)))
                    self._condition.notify_all()
                return
            time_base = _SHOWINFO_TIME_BASE.search(line)
            if time_base is not None and int(time_base.group(2)) > 0:
                self._time_base = Fraction(int(time_base.group(1)), int(time_base.group(2)))
            return
        match = _LOG_LINE.match(line)
        if match is None:
            level, message, contexts = "", line, []
        else:
            level, message = match.group("level"), match.group("message")
            contexts = _CONTEXT.findall(match.group("contexts"))
        if not message.strip():
            return
        is_error = level in ("error", "fatal", "panic")
        if is_error or (level in ("warning", "") and _DAMAGE.search(message)):
            text = " ".join(message.split())
            if contexts:  # "[in#0/mov,mp4,... @ 0x..]" -> "mov", "[dec:h264 @ 0x..]" -> "h264"
                where = contexts[-1].split("/")[-1].split(":")[-1].split(",")[0].strip()
                text = f"{where}: {text}" if where else text
            with self._condition:
                # Before a window's first frame, the decoder's complaints are about frames before
                # the window (after a seek: those missing their references), never given out.
                early = self.start_s > 0 and not self._pts
                lines = self._early_error_lines if early else self._error_lines
                if len(lines) < 50 and text not in lines:
                    lines.append(text)

    def _read_frame_bytes(self) -> bytearray | None:
        """Exactly one frame from stdout; None at the end (noting a frame cut short)."""
        assert self._process is not None and self._process.stdout is not None
        buffer = bytearray(self._frame_bytes)
        view = memoryview(buffer)
        got = 0
        while got < self._frame_bytes:
            try:
                count = self._process.stdout.readinto(view[got:])  # type: ignore[attr-defined]
            except (OSError, ValueError):
                count = 0
            if not count:
                break
            got += count
        if got == self._frame_bytes:
            return buffer
        if got and not self._closed_by_caller:
            self._note(f"ffmpeg's output ended in the middle of a frame ({got} of {self._frame_bytes} bytes)")
        return None

    def _pts_of_output(self, number: int) -> int | None:
        with self._condition:
            while len(self._pts) <= number and not self._stderr_done:
                self._condition.wait(1.0)
            return self._pts[number] if number < len(self._pts) else None

    def _note(self, text: str) -> None:
        with self._condition:
            if text not in self._error_lines:
                self._error_lines.insert(0, text)

    def _restart(self, *, seek_further_back: bool = False, cpu: bool = False) -> None:
        self._kill()
        if seek_further_back:
            self._seek_step += 1
        if cpu:
            self.hwaccel = False
        self._start()

    def _can_seek_further_back(self) -> bool:
        return self._seeking and self._seek_step + 1 < len(SEEK_MARGINS_S)

    def _end(self) -> bool:
        """Waits for ffmpeg; True when it was started again (CPU decoding, or an earlier seek)."""
        process = self._process
        assert process is not None
        returncode = process.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=10)
        if self.hwaccel and self._outputs == 0 and returncode != 0 and not self._closed_by_caller:
            self._restart(cpu=True)  # CUDA decoding failed at once: decode on the CPU instead
            return True
        window_has_frames = self._first_expected < len(self.index) and (
            float(self.index.times_s[self._first_expected]) < self.end_s
        )
        if self._outputs == 0 and window_has_frames and self._can_seek_further_back():
            self._restart(seek_further_back=True)  # the seek went past every frame of the window
            return True
        self._finished = True
        if self._closed_by_caller:
            return False
        lines = self._error_lines[:_MAX_ERROR_LINES]
        if returncode != 0:
            lines = lines or self._early_error_lines[:_MAX_ERROR_LINES]
            self.error = "; ".join(lines) if lines else f"ffmpeg exited with status {returncode}"
        elif lines:
            self.error = "; ".join(lines)
        return False

    # -- iteration ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        while True:
            if self._finished:
                raise StopIteration
            buffer = self._read_frame_bytes()
            if buffer is None:
                if self._end():
                    continue
                raise StopIteration
            number = self._outputs
            self._outputs += 1
            pts = self._pts_of_output(number)
            if pts is None:
                self._note(f"ffmpeg reported no timestamp for its frame {number}")
                self._stop(report=True)
                raise StopIteration
            if number == 0 and self._can_seek_further_back() and self._landed_late(pts):
                self._restart(seek_further_back=True)
                continue
            frame = self._frame(pts, buffer)
            if frame is None:
                continue
            if frame.time_s >= self.end_s:
                self._stop(report=True)  # the window is complete
                raise StopIteration
            self.frames_read += 1
            return frame

    def _index_pts(self, pts: int) -> int:
        """A timestamp of ffmpeg's filter time base in the index's time base."""
        if self._time_base is not None and self._time_base != self.index.time_base:
            return round(Fraction(pts) * self._time_base / self.index.time_base)
        return pts

    def _landed_late(self, pts: int) -> bool:
        """Whether the first frame after a seek is later than the window's first frame."""
        if self._first_expected >= len(self.index):
            return False
        return self.index.position_of_pts(self._index_pts(pts)) > self._first_expected

    def _frame(self, pts: int, buffer: bytearray) -> Frame | None:
        """The Frame for a decoded picture, or None when it is outside the window or selection."""
        index = self.index
        pts = self._index_pts(pts)
        position = index.index_of_pts(pts)
        if position is None:
            self.unmatched_pts += 1
            position = index.position_of_pts(pts)
            time_s = index.time_of_pts(pts)
            wanted = True  # not in the index: ffmpeg's own selection decides
        else:
            time_s = float(index.times_s[position])
            wanted = self._selected is None or bool(self._selected[position])
        if time_s < self.start_s or not wanted:
            return None
        image = np.frombuffer(buffer, dtype=np.uint8).reshape(self.info.height, self.info.width, 3)
        return Frame(index=position, time_s=time_s, image=image)

    def _stop(self, *, report: bool) -> None:
        """Kills ffmpeg and ends the stream; with `report`, the damage seen so far is `error`."""
        if self._finished:
            self._kill()
            return
        self._closed_by_caller = not report
        self._kill()
        self._finished = True
        if report and self._error_lines:
            self.error = "; ".join(self._error_lines[:_MAX_ERROR_LINES])

    def _kill(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        with contextlib.suppress(Exception):
            process.wait(timeout=10)
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=10)  # stderr ends with the process: read it all
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                with contextlib.suppress(Exception):
                    pipe.close()

    def close(self) -> None:
        """Stops ffmpeg (killing it if it still runs); `error` stays None for a stream cut short here."""
        self._stop(report=False)

    def __enter__(self) -> FrameStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            with contextlib.suppress(Exception):
                process.kill()
                process.wait(timeout=5)


def read_frames(
    path: str,
    info: common_pb2.VideoInfo,
    index: FrameIndex,
    *,
    start_s: float = 0.0,
    end_s: float = math.inf,
    max_fps: float = 0.0,
    hwaccel: bool = False,
) -> FrameStream:
    """Streams the frames with `start_s <= t < end_s` (selected at `max_fps` when > 0), in order.

    `info` and `index` come from `probe.probe_video` (or the stored sidecar); images are BGR
    uint8 of info.height x info.width. `hwaccel` decodes with CUDA, falling back to the CPU when
    ffmpeg fails at once with it.
    """
    return FrameStream(
        str(path),
        info,
        index,
        start_s=start_s,
        end_s=end_s,
        max_fps=max_fps,
        hwaccel=hwaccel,
    )
