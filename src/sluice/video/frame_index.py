"""Every frame's presentation timestamp, and the JSON sidecar that stores it.

A video's frame index is written next to the batch's objects under `frame_index_name(video)`,
i.e. `.sluice/frames/<video name>.json`, so that every task of a video agrees on which frame is
which without probing the file again. The format is a contract other languages may read:

    {"version": 1, "time_base": [num, den], "pts": [p0, p1, ...]}

- `time_base`: the video stream's time base as a fraction num/den of a second (positive integers).
- `pts`: the presentation timestamp of every frame of the stream, in time-base units, sorted in
  increasing order (display order). Frame `i` of the video is the one with `pts[i]`.

A frame's time in seconds counts from the first frame: `pts[i] * (num / den) - pts[0] * (num / den)`,
computed in IEEE double precision exactly like that (as FFmpeg computes a frame's `t`), so that
sampling decisions made from the index agree with those made inside FFmpeg.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np

FORMAT_VERSION = 1
FRAME_INDEX_FOLDER = ".sluice/frames"


def frame_index_name(video_name: str) -> str:
    """Object name (inside the batch folder) of a video's frame index sidecar."""
    return f"{FRAME_INDEX_FOLDER}/{video_name}.json"


@dataclass(frozen=True, eq=False)
class FrameIndex:
    """The presentation timestamps (`pts`, int64, sorted) of every frame, in `time_base` units."""

    time_base: Fraction
    pts: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        time_base = Fraction(self.time_base)
        if time_base <= 0:
            raise ValueError(f"time base must be positive, not {time_base}")
        pts = np.array(self.pts, dtype=np.int64).reshape(-1)
        if pts.size > 1 and bool(np.any(pts[1:] < pts[:-1])):
            raise ValueError("frame timestamps must be sorted")
        pts.setflags(write=False)
        object.__setattr__(self, "time_base", time_base)
        object.__setattr__(self, "pts", pts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FrameIndex):
            return NotImplemented
        return self.time_base == other.time_base and np.array_equal(self.pts, other.pts)

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return int(self.pts.size)

    def __repr__(self) -> str:
        return f"FrameIndex(time_base={self.time_base}, frames={len(self)}, start_s={self.start_s})"

    @property
    def seconds_per_tick(self) -> float:
        """num / den as a double (what FFmpeg's av_q2d gives)."""
        return self.time_base.numerator / self.time_base.denominator

    @property
    def start_s(self) -> float:
        """Presentation time of the first frame, in seconds (0.0 for an empty index)."""
        if self.pts.size == 0:
            return 0.0
        return float(self.pts[0]) * self.seconds_per_tick

    @cached_property
    def times_s(self) -> np.ndarray:
        """Each frame's time in seconds from the first frame (float64, read-only)."""
        times = self.pts.astype(np.float64) * self.seconds_per_tick - self.start_s
        times.setflags(write=False)
        return times

    def time_of_pts(self, pts: int) -> float:
        """Seconds from the first frame of a timestamp, computed as `times_s` is."""
        return float(pts) * self.seconds_per_tick - self.start_s

    def index_of_pts(self, pts: int) -> int | None:
        """The frame whose timestamp is exactly `pts`, or None."""
        position = int(np.searchsorted(self.pts, pts, side="left"))
        if position < self.pts.size and int(self.pts[position]) == pts:
            return position
        return None

    def position_of_pts(self, pts: int) -> int:
        """Where `pts` would be inserted into the index (its frame's index when present)."""
        return int(np.searchsorted(self.pts, pts, side="left"))

    def to_json_bytes(self) -> bytes:
        """The sidecar's bytes (format in the module docstring)."""
        document = {
            "version": FORMAT_VERSION,
            "time_base": [self.time_base.numerator, self.time_base.denominator],
            "pts": self.pts.tolist(),
        }
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def from_json_bytes(cls, data: bytes | str) -> FrameIndex:
        """Reads a sidecar; raises ValueError when it is not one."""
        try:
            document: Any = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"frame index is not JSON: {error}") from error
        if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
            raise ValueError(f"frame index is not version {FORMAT_VERSION}")
        time_base = document.get("time_base")
        pts = document.get("pts")
        if (
            not isinstance(time_base, list)
            or len(time_base) != 2
            or not all(type(part) is int and part > 0 for part in time_base)
        ):
            raise ValueError("frame index has no valid time_base [num, den]")
        if not isinstance(pts, list) or not all(type(value) is int for value in pts):
            raise ValueError("frame index has no valid pts list")
        return cls(time_base=Fraction(time_base[0], time_base[1]), pts=np.array(pts, dtype=np.int64))
