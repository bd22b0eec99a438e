"""sluice/byte_tracker@v1: follow detections across the frames of a video (ByteTrack).

Also accepted as roboflow_core/byte_tracker@v1, @v2 and @v3. The tracker keeps state per video
stream: the stream is the `video_id` of each image's metadata ("default" when absent), so the
frames of different videos never mix. Frames of one stream must come in order (within a batch
they are taken by `frame_number` when every frame has one). `tracked_detections` holds the
detections that belong to a track, with `tracker_id`; `new_instances` those whose track is seen
for the first time, `already_seen_instances` the others. `CompiledWorkflow.end_stream(video_id)`
drops a stream's state.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import supervision as sv

from sluice.workflow.blocks.base import BlockManifest, Element, Property
from sluice.workflow.blocks.byte_tracker.backend import Tracker, TrackerSettings, backend_name, new_tracker
from sluice.workflow.blocks.checks import (
    check_fraction,
    check_non_negative_int,
    check_positive,
    check_positive_int,
)
from sluice.workflow.detections import select
from sluice.workflow.kinds import Kind

DEFAULT_STREAM = "default"
SEEN_IDS_KEPT = 16384


class _Stream:
    """One video stream's tracker and the track ids it has reported."""

    def __init__(self, settings: TrackerSettings) -> None:
        self.lock = threading.Lock()
        self.settings = settings
        self.tracker: Tracker = new_tracker(settings)
        self.seen: OrderedDict[int, None] = OrderedDict()

    def update(self, detections: sv.Detections) -> dict[str, sv.Detections]:
        tracked = self.tracker.update(detections)
        if tracked.tracker_id is not None:
            tracked = select(tracked, tracked.tracker_id >= 0)
        ids = [] if tracked.tracker_id is None else [int(t) for t in tracked.tracker_id]
        new = np.array([t not in self.seen for t in ids], dtype=bool)
        for track in ids:
            self.seen[track] = None
            self.seen.move_to_end(track)
        while len(self.seen) > SEEN_IDS_KEPT:
            self.seen.popitem(last=False)
        return {
            "tracked_detections": tracked,
            "new_instances": select(tracked, new),
            "already_seen_instances": select(tracked, ~new),
        }


def stream_of(element: Element) -> str:
    return str(element.metadata.get("video_id") or DEFAULT_STREAM)


def _frame_order(indices: list[int], elements: Sequence[Element]) -> list[int]:
    frames = [elements[i].metadata.get("frame_number") for i in indices]
    numbers = [f for f in frames if isinstance(f, int)]
    if len(numbers) != len(indices):
        return indices
    return [i for _, i in sorted(zip(numbers, indices, strict=True), key=lambda pair: pair[0])]


class ByteTracker:
    def __init__(self) -> None:
        if backend_name() is None:
            raise ValueError("byte tracking needs supervision < 0.30 or the `trackers` package installed")
        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}

    def _stream(self, stream: str, settings: TrackerSettings) -> _Stream:
        with self._lock:
            found = self._streams.get(stream)
            if found is None or found.settings != settings:
                found = _Stream(settings)
                self._streams[stream] = found
            return found

    def run(self, batch: list[dict[str, Any]], elements: Sequence[Element]) -> list[dict[str, Any]]:
        by_stream: dict[str, list[int]] = defaultdict(list)
        for index, element in enumerate(elements):
            by_stream[stream_of(element)].append(index)
        results: list[dict[str, Any]] = [{} for _ in batch]
        for stream, indices in by_stream.items():
            for index in _frame_order(indices, elements):
                item = batch[index]
                settings = TrackerSettings(
                    item["track_activation_threshold"],
                    item["lost_track_buffer"],
                    item["minimum_matching_threshold"],
                    item["minimum_consecutive_frames"],
                    float(item["frame_rate"]),
                )
                state = self._stream(stream, settings)
                with state.lock:
                    results[index] = state.update(item["detections"])
        return results

    def end_stream(self, video_id: str) -> None:
        with self._lock:
            self._streams.pop(video_id, None)


MANIFEST = BlockManifest(
    type="sluice/byte_tracker@v1",
    description="Track `detections` across the frames of each video stream; outputs `tracked_detections`.",
    properties={
        "detections": Property((Kind.OBJECT_DETECTION,), required=True, selector_only=True),
        "image": Property(
            (Kind.IMAGE,), selector_only=True, description="Accepted for Roboflow's v2 and v3."
        ),
        "metadata": Property(
            (Kind.VIDEO_METADATA,), selector_only=True, description="Accepted for Roboflow's v1."
        ),
        "track_activation_threshold": Property((Kind.PARAMETER,), default=0.25, check=check_fraction),
        "lost_track_buffer": Property((Kind.PARAMETER,), default=30, check=check_non_negative_int),
        "minimum_matching_threshold": Property((Kind.PARAMETER,), default=0.8, check=check_fraction),
        "minimum_consecutive_frames": Property((Kind.PARAMETER,), default=1, check=check_positive_int),
        "frame_rate": Property((Kind.PARAMETER,), default=30, check=check_positive),
    },
    outputs={
        "tracked_detections": Kind.OBJECT_DETECTION,
        "new_instances": Kind.OBJECT_DETECTION,
        "already_seen_instances": Kind.OBJECT_DETECTION,
    },
    build=ByteTracker,
    aliases={"predictions": "detections"},
    ignored=frozenset({"instances_cache_size"}),
    type_aliases=(
        "roboflow_core/byte_tracker@v1",
        "roboflow_core/byte_tracker@v2",
        "roboflow_core/byte_tracker@v3",
        "ByteTracker",
    ),
)
