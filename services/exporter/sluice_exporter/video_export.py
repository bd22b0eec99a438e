"""The export of a video job: frame records in order with tracker ids joined, videos joined.

Each segment task wrote its frames' records, the records of its warm-up frames (the seam) and one
H.264 part per image output (names in `sluice.video.outputs`). Per video, segments are taken in
order and their tracker ids mapped onto the previous segment's through the warm-up frames both
saw (`sluice.video.seams`), so one object keeps one id through the whole video. A frame recorded
twice (a task that ran again) keeps one record, an ok one when there is one. The parts of each
annotated video are joined into `videos/<video>.<output>.mp4` in the processing folder.
"""

from __future__ import annotations

import logging
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from sluice import storage
from sluice.v1 import tasks_pb2
from sluice.video import outputs
from sluice.video.encode import concat_mp4
from sluice.video.seams import SegmentTracks, apply_tracker_ids, join_tracker_ids
from sluice_exporter.aggregate import Record, is_ok, is_result_object, parse_records

log = logging.getLogger(__name__)


def _segment(record: Record) -> int:
    value = record.get(outputs.SEGMENT)
    return value if isinstance(value, int) else 0


def _frame(record: Record) -> int | None:
    value = record.get(outputs.FRAME_INDEX)
    return value if isinstance(value, int) else None


def read_video_records(input_url: str, names: Iterable[str]) -> list[Record]:
    """Every record of the named objects that names a video (others are logged and skipped)."""
    records: list[Record] = []
    for name in sorted(names):
        for record in parse_records(storage.read_bytes(input_url, name), name, key=outputs.VIDEO):
            records.append(record)
    return records


def join_video(owned: list[Record], seams: list[Record]) -> list[Record]:
    """One video's records, tracker ids joined across segments, one per frame, in frame order;
    video-level error records last."""
    by_segment: dict[int, list[Record]] = defaultdict(list)
    warm: dict[int, list[Record]] = defaultdict(list)
    for record in owned:
        by_segment[_segment(record)].append(record)
    for record in seams:
        warm[_segment(record)].append(record)
    order = sorted(by_segment.keys() | warm.keys())
    tracks = [
        SegmentTracks(
            owned=[r for r in by_segment[k] if _frame(r) is not None],
            warmup=[r for r in warm[k] if _frame(r) is not None],
        )
        for k in order
    ]
    mappings = join_tracker_ids(tracks)
    chosen: dict[int, Record] = {}
    errors: list[Record] = []
    for k, mapping in zip(order, mappings, strict=True):
        for record in by_segment[k]:
            frame = _frame(record)
            if frame is None:
                errors.append(record)
                continue
            record = apply_tracker_ids(record, mapping)
            kept = chosen.get(frame)
            if kept is None or (is_ok(record) and not is_ok(kept)):
                chosen[frame] = record
    return [chosen[frame] for frame in sorted(chosen)] + errors


def video_records(
    input_url: str, objects: dict[str, int], failed_tasks: Iterable[tasks_pb2.FailedTask]
) -> list[Record]:
    """The records of every video of the job, video by video in name order."""
    owned = read_video_records(input_url, [n for n in objects if is_result_object(n)])
    seams = read_video_records(input_url, [n for n in objects if n.startswith(outputs.SEAMS_PREFIX)])
    owned_by: dict[str, list[Record]] = defaultdict(list)
    seams_by: dict[str, list[Record]] = defaultdict(list)
    for record in owned:
        owned_by[record[outputs.VIDEO]].append(record)
    for record in seams:
        seams_by[record[outputs.VIDEO]].append(record)
    for task in failed_tasks:
        for name in task.input_names:
            owned_by[name].append(
                {
                    outputs.VIDEO: name,
                    outputs.FRAME_INDEX: None,
                    outputs.TIMESTAMP: None,
                    "task_id": task.task_id,
                    "status": "error",
                    "error": f"task failed: {task.error}",
                    "outputs": {},
                    "image_outputs": {},
                }
            )
    joined: list[Record] = []
    for video in sorted(owned_by):
        joined.extend(join_video(owned_by[video], seams_by.get(video, [])))
    return joined


def join_video_parts(input_url: str, objects: dict[str, int]) -> dict[str, int]:
    """Join each annotated video's parts into `videos/...mp4` under `input_url`; their sizes."""
    parts: dict[str, list[str]] = defaultdict(list)
    for name in objects:
        if name.startswith(outputs.SEGMENTS_PREFIX) and name.endswith(".mp4"):
            folder, _, _ = name.rpartition("/")
            parts[folder].append(name)
    joined: dict[str, int] = {}
    for folder, names in sorted(parts.items()):
        target = outputs.VIDEOS_PREFIX + folder[len(outputs.SEGMENTS_PREFIX) :]
        with tempfile.TemporaryDirectory(prefix="sluice-export-") as scratch:
            local = []
            for i, name in enumerate(sorted(names)):
                path = Path(scratch) / f"{i:05d}.mp4"
                path.write_bytes(storage.read_bytes(input_url, name))
                local.append(str(path))
            out = Path(scratch) / "joined.mp4"
            concat_mp4(local, str(out))
            storage.write_file(input_url, target, str(out))
            joined[target] = out.stat().st_size
        log.info("joined %d parts into %s", len(names), target)
    return joined
