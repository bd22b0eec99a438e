"""ByteTrack from supervision (`sv.ByteTrack`, up to supervision 0.29) or from Roboflow's
`trackers` package (`ByteTrackTracker`, where supervision moved it), whichever is installed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import supervision as sv


class Tracker(Protocol):
    def update(self, detections: sv.Detections) -> sv.Detections:
        """Detections of the next frame -> those tracked, with `tracker_id` set."""
        ...


@dataclass(frozen=True)
class TrackerSettings:
    """Roboflow's byte_tracker parameters."""

    track_activation_threshold: float = 0.25
    lost_track_buffer: int = 30
    minimum_matching_threshold: float = 0.8
    minimum_consecutive_frames: int = 1
    frame_rate: float = 30.0


class _Supervision:
    def __init__(self, tracker: Any) -> None:
        self._tracker = tracker

    def update(self, detections: sv.Detections) -> sv.Detections:
        tracked: sv.Detections = self._tracker.update_with_detections(detections)
        return tracked


def backend_name() -> str | None:
    """Which ByteTrack is installed: "supervision", "trackers", or None."""
    if hasattr(sv, "ByteTrack"):
        return "supervision"
    try:
        import trackers  # noqa: F401
    except ImportError:
        return None
    return "trackers"


def new_tracker(settings: TrackerSettings) -> Tracker:
    """A fresh tracker for one video stream."""
    if hasattr(sv, "ByteTrack"):
        return _Supervision(
            sv.ByteTrack(
                track_activation_threshold=settings.track_activation_threshold,
                lost_track_buffer=settings.lost_track_buffer,
                minimum_matching_threshold=settings.minimum_matching_threshold,
                frame_rate=int(settings.frame_rate),
                minimum_consecutive_frames=settings.minimum_consecutive_frames,
            )
        )
    from trackers import ByteTrackTracker

    tracker: Tracker = ByteTrackTracker(
        lost_track_buffer=settings.lost_track_buffer,
        frame_rate=settings.frame_rate,
        track_activation_threshold=settings.track_activation_threshold,
        high_conf_det_threshold=settings.track_activation_threshold,
        minimum_consecutive_frames=settings.minimum_consecutive_frames,
        minimum_iou_threshold=1 - settings.minimum_matching_threshold,
    )
    return tracker
