"""Joining tracker ids across the seams of a video cut into segments.

A long video is cut into time segments processed in parallel, each with a tracker of its own, so
each segment numbers its tracks from scratch. To keep one id per object through the whole video,
every segment but the first also runs over a few *warm-up* frames before its start: frames the
previous segment owns. There both trackers have seen the same objects, so their ids can be matched:

1. Segment 0 keeps its ids: they are global ids.
2. For segment k > 0, each warm-up record is paired with segment k-1's owned record of the same
   video and frame index, whose ids are made global through segment k-1's mapping (found first).
   In each pair, predictions that carry a `tracker_id` are matched when they have the same class
   and an IoU of at least 0.5, greedily, highest IoU first, each prediction at most once.
3. Every local id of segment k takes the global id it matched in the most frames, one to one
   (pairs taken by count, most first; a local id or a global id already taken is skipped), so two
   local tracks never merge into one.
4. Local ids that matched nothing (objects that appeared after the seam, or were not seen in
   the warm-up) get fresh ids above every global id used so far, so ids never collide across
   segments.

A record is a JSON dict with `video`, `frame_index` and `outputs` (detections serialized as in
`sluice.workflow.serialize`, possibly nested in lists and dicts); a prediction is a dict with
`x`, `y`, `width`, `height` (box centre and size) and `tracker_id`. One tracker per workflow is
assumed: within a record, a tracker id names one object (its first prediction is used).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MIN_IOU = 0.5
"""Least IoU of two boxes of one object in the same frame seen by two trackers."""
_BOX_KEYS = ("x", "y", "width", "height")


@dataclass
class SegmentTracks:
    """The records of one segment.

    `owned`: the records of the frames the segment owns. `warmup`: the records it made for the
    frames before its start (owned by the previous segment); empty for the first segment.
    """

    owned: list[dict[str, Any]] = field(default_factory=list)
    warmup: list[dict[str, Any]] = field(default_factory=list)


def _is_prediction(value: Mapping[str, Any]) -> bool:
    return "tracker_id" in value and all(key in value for key in _BOX_KEYS)


def _predictions(value: Any) -> Iterator[dict[str, Any]]:
    """Every prediction with a tracker id inside `value`, walking dicts and lists."""
    if isinstance(value, dict):
        if _is_prediction(value):
            yield value
            return
        for item in value.values():
            yield from _predictions(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _predictions(item)


def _tracked(record: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """The record's predictions by tracker id (the first prediction of each id)."""
    found: dict[int, dict[str, Any]] = {}
    for prediction in _predictions(record.get("outputs")):
        tracker_id = prediction["tracker_id"]
        if isinstance(tracker_id, int) and not isinstance(tracker_id, bool):
            found.setdefault(tracker_id, prediction)
    return found


def _segment_ids(segment: SegmentTracks) -> set[int]:
    return {t for record in (*segment.owned, *segment.warmup) for t in _tracked(record)}


def _frame_key(record: Mapping[str, Any]) -> tuple[Any, Any]:
    return record.get("video"), record.get("frame_index")


def _class_of(prediction: Mapping[str, Any]) -> Any:
    return prediction.get("class", prediction.get("class_id"))


def iou(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """IoU of two predictions' boxes (centre x, y and width, height)."""
    ax1, ay1 = a["x"] - a["width"] / 2, a["y"] - a["height"] / 2
    bx1, by1 = b["x"] - b["width"] / 2, b["y"] - b["height"] / 2
    overlap_w = min(ax1 + a["width"], bx1 + b["width"]) - max(ax1, bx1)
    overlap_h = min(ay1 + a["height"], by1 + b["height"]) - max(ay1, by1)
    if overlap_w <= 0 or overlap_h <= 0:
        return 0.0
    overlap = overlap_w * overlap_h
    union = a["width"] * a["height"] + b["width"] * b["height"] - overlap
    return float(overlap / union) if union > 0 else 0.0


def _match_frame(
    local: Mapping[int, Mapping[str, Any]], known: Mapping[int, Mapping[str, Any]]
) -> list[tuple[int, int]]:
    """(local id, global id) of one frame: same class, IoU >= MIN_IOU, greedy by IoU, one to one."""
    pairs = []
    for local_id, mine in local.items():
        for global_id, theirs in known.items():
            if _class_of(mine) != _class_of(theirs):
                continue
            overlap = iou(mine, theirs)
            if overlap >= MIN_IOU:
                pairs.append((overlap, local_id, global_id))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    taken_local: set[int] = set()
    taken_global: set[int] = set()
    matched = []
    for _, local_id, global_id in pairs:
        if local_id not in taken_local and global_id not in taken_global:
            taken_local.add(local_id)
            taken_global.add(global_id)
            matched.append((local_id, global_id))
    return matched


def _join(
    segment: SegmentTracks, previous: SegmentTracks, previous_mapping: Mapping[int, int], next_id: int
) -> dict[int, int]:
    """Segment's mapping local id -> global id, given the previous segment's (see the module doc)."""
    owned_before = {_frame_key(record): record for record in previous.owned}
    votes: Counter[tuple[int, int]] = Counter()
    for record in segment.warmup:
        theirs = owned_before.get(_frame_key(record))
        if theirs is None:
            continue
        known = {previous_mapping.get(t, t): p for t, p in _tracked(theirs).items()}
        votes.update(_match_frame(_tracked(record), known))
    mapping: dict[int, int] = {}
    taken: set[int] = set()
    for (local_id, global_id), _ in sorted(votes.items(), key=lambda v: (-v[1], v[0])):
        if local_id not in mapping and global_id not in taken:
            mapping[local_id] = global_id
            taken.add(global_id)
    for local_id in sorted(_segment_ids(segment) - set(mapping)):
        mapping[local_id] = next_id
        next_id += 1
    return mapping


def join_tracker_ids(segments: Sequence[SegmentTracks]) -> list[dict[int, int]]:
    """Per segment, in order: each local tracker id it reports -> its id for the whole video.

    Segment 0 keeps its ids; later segments take the ids their warm-up frames matched and fresh
    ids (above every id given so far) for the rest. See the module docstring for the algorithm.
    """
    mappings: list[dict[int, int]] = []
    highest = 0
    for index, segment in enumerate(segments):
        if index == 0:
            mapping = {t: t for t in sorted(_segment_ids(segment))}
        else:
            mapping = _join(segment, segments[index - 1], mappings[-1], highest + 1)
        mappings.append(mapping)
        highest = max([highest, *mapping.values()])
    return mappings


def _rewrite(value: Any, mapping: Mapping[int, int]) -> Any:
    if isinstance(value, dict):
        if _is_prediction(value):
            tracker_id = value["tracker_id"]
            if isinstance(tracker_id, int) and tracker_id in mapping:
                return {**value, "tracker_id": mapping[tracker_id]}
            return dict(value)
        return {key: _rewrite(item, mapping) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_rewrite(item, mapping) for item in value]
    return value


def apply_tracker_ids(record: dict[str, Any], mapping: Mapping[int, int]) -> dict[str, Any]:
    """A copy of `record` whose predictions (anywhere in `outputs`) carry `mapping[tracker_id]`.

    Ids missing from `mapping` are kept; the input record is not changed.
    """
    if "outputs" not in record:
        return dict(record)
    return {**record, "outputs": _rewrite(record["outputs"], mapping)}
