"""Which frames are processed, and how a long video is cut into segments.

Sampling at `max_fps` keeps the first frame of each bucket `floor(t * max_fps + 1e-6)`, where `t`
is the frame's time in seconds from the first frame (`FrameIndex.times_s`). The decoder applies
the same rule inside FFmpeg (`decode.read_frames`), computed the same way in doubles.

A segment owns the selected frames with `start_s <= t < end_s`. Segment boundaries lie on bucket
boundaries (a whole number of 1/max_fps buckets), so cutting never changes which frames are
selected: the union of the segments' owned frames is the whole video's selection, each frame once.
A segment also has warm-up frames (selected frames in `[warmup_start_s, start_s)`) that a tracker
sees before the frames it owns, so its state is settled when its own frames begin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BUCKET_EPSILON = 1e-6


def _buckets(times_s: np.ndarray, max_fps: float) -> np.ndarray:
    return np.floor(np.asarray(times_s, dtype=np.float64) * float(max_fps) + BUCKET_EPSILON)


def selected_frames(times_s: np.ndarray, max_fps: float) -> np.ndarray:
    """Indices (int64, increasing) of the frames processed at `max_fps` (every frame when <= 0)."""
    times = np.asarray(times_s, dtype=np.float64)
    count = times.size
    if max_fps <= 0 or count == 0:
        return np.arange(count, dtype=np.int64)
    buckets = _buckets(times, max_fps)
    first = np.empty(count, dtype=bool)
    first[0] = True
    first[1:] = buckets[1:] > buckets[:-1]
    return np.flatnonzero(first).astype(np.int64)


@dataclass(frozen=True)
class Segment:
    """One part of a video processed by one task; times in seconds from the first frame."""

    index: int
    count: int
    start_s: float
    end_s: float  # math.inf for the last segment
    warmup_start_s: float
    frames_total: int  # selected frames with start_s <= t < end_s


def _segment_length(segment_s: float, max_fps: float) -> tuple[float, int]:
    """The segment length in seconds and (when sampling) in buckets."""
    if max_fps > 0:
        buckets = max(1, round(segment_s * max_fps))
        return buckets / max_fps, buckets
    return float(segment_s), 0


def plan_segments(times_s: np.ndarray, max_fps: float, segment_s: float, warmup_s: float) -> list[Segment]:
    """Cuts a video into segments of about `segment_s` seconds (one when it is not longer).

    Boundaries are at k * L, where L is `segment_s` rounded to a whole number of 1/max_fps buckets
    when `max_fps > 0`; `warmup_start_s` is `max(0, start_s - warmup_s)` moved back onto a bucket
    boundary. Segments that would own no frame (gaps in a variable-rate video) are left out and
    the rest numbered 0..count-1; every frame still belongs to exactly one segment.
    """
    times = np.asarray(times_s, dtype=np.float64)
    selection = selected_frames(times, max_fps)
    selected_times = times[selection]
    last_t = float(times[-1]) if times.size else 0.0
    if segment_s <= 0 or times.size == 0:
        return [Segment(0, 1, 0.0, math.inf, 0.0, int(selection.size))]
    length_s, length_buckets = _segment_length(segment_s, max_fps)
    warmup_buckets = math.ceil(warmup_s * max_fps - BUCKET_EPSILON) if max_fps > 0 else 0
    starts: list[tuple[float, float]] = []  # (start_s, warmup_start_s)
    k = 0
    while True:
        if max_fps > 0:
            start_bucket = k * length_buckets
            start = start_bucket / max_fps
            warmup_start = max(0, start_bucket - warmup_buckets) / max_fps if warmup_s > 0 else start
        else:
            start = k * length_s
            warmup_start = max(0.0, start - warmup_s) if warmup_s > 0 else start
        if k > 0 and start > last_t:
            break
        starts.append((start, warmup_start))
        k += 1
    planned: list[tuple[float, float, float, int]] = []
    for number, (start, warmup_start) in enumerate(starts):
        end = starts[number + 1][0] if number + 1 < len(starts) else math.inf
        owned = int(np.count_nonzero((selected_times >= start) & (selected_times < end)))
        planned.append((start, end, warmup_start, owned))
    # Drop segments that own nothing; the previous one's end moves to the next one's start.
    kept = [plan for plan in planned if plan[3] > 0] or [planned[0]]
    segments: list[Segment] = []
    for number, (start, _end, warmup_start, owned) in enumerate(kept):
        begin = 0.0 if number == 0 else start
        end = kept[number + 1][0] if number + 1 < len(kept) else math.inf
        segments.append(
            Segment(
                index=number,
                count=len(kept),
                start_s=begin,
                end_s=end,
                warmup_start_s=min(warmup_start, begin),
                frames_total=owned,
            )
        )
    return segments


def owned_and_warmup(times_s: np.ndarray, max_fps: float, segment: Segment) -> tuple[np.ndarray, np.ndarray]:
    """The selected frame indices a segment owns, and its warm-up frames (before `start_s`)."""
    times = np.asarray(times_s, dtype=np.float64)
    selection = selected_frames(times, max_fps)
    selected_times = times[selection]
    owned = selection[(selected_times >= segment.start_s) & (selected_times < segment.end_s)]
    warmup = selection[(selected_times >= segment.warmup_start_s) & (selected_times < segment.start_s)]
    return owned, warmup
