"""Tracking across segment seams: the synthetic shapes clip, its crafted detector through the real
runner and workflow, and the joining of tracker ids (sluice.video.seams)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
import pytest

from sluice.models import Detector, MappingCatalog, ModelSpec, spec_from_dict
from sluice.video.seams import SegmentTracks, apply_tracker_ids, join_tracker_ids
from sluice.video.synthetic import (
    SHAPES_CLASS_NAMES,
    SHAPES_MODEL_ID,
    ShapeTrack,
    moving_shapes_plan,
    render_shapes_frame,
    shapes_model_spec,
    shapes_spec_fields,
    write_moving_shapes,
    write_shapes_detector,
)
from sluice.workflow import compile_workflow, to_json_value

WORKFLOW = Path(__file__).parent.parent / "examples" / "workflows" / "track-shapes.json"
WIDTH, HEIGHT, DURATION, FPS = 640, 360, 12.0, 5.0
SEAM_S, WARMUP_S = 6.0, 2.0
Box = tuple[float, float, float, float]


@pytest.fixture(scope="module")
def shapes_spec(tmp_path_factory: pytest.TempPathFactory) -> ModelSpec:
    path = tmp_path_factory.mktemp("shapes") / "shapes.onnx"
    write_shapes_detector(path)
    return shapes_model_spec(path)


def box_iou(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    overlap = width * height
    return overlap / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap)


def prediction_box(p: dict[str, Any]) -> Box:
    return (
        p["x"] - p["width"] / 2,
        p["y"] - p["height"] / 2,
        p["x"] + p["width"] / 2,
        p["y"] + p["height"] / 2,
    )


# --- The synthetic clip and its detector ---------------------------------------------------


def test_the_plan_never_shows_two_squares_of_one_colour() -> None:
    plan = moving_shapes_plan(WIDTH, HEIGHT, DURATION)
    assert 4 <= len(plan) <= 6 and {t.color for t in plan} == set(SHAPES_CLASS_NAMES)
    for t in np.arange(0, DURATION, 0.05):
        colors = [s.color for s in plan if s.box_at(WIDTH, HEIGHT, float(t))]
        assert len(colors) == len(set(colors)), (t, colors)
    assert any(s.enter_s < SEAM_S - WARMUP_S and s.exit_s > SEAM_S for s in plan)
    assert any(SEAM_S - WARMUP_S < s.enter_s < SEAM_S < s.exit_s for s in plan)
    assert any(s.enter_s > SEAM_S for s in plan)
    frame = render_shapes_frame(plan, WIDTH, HEIGHT, 3.0)
    assert frame.shape == (HEIGHT, WIDTH, 3) and frame.dtype == np.uint8
    assert {tuple(int(v) for v in c) for c in np.unique(frame.reshape(-1, 3), axis=0)} == {
        (0, 0, 0),
        (0, 0, 255),
        (0, 255, 0),
        (255, 0, 0),
    }


def _check_finds_plan(detector: Detector, frames: list[np.ndarray], times: list[float]) -> int:
    plan = moving_shapes_plan(WIDTH, HEIGHT, DURATION)
    checked = 0
    for detections, t in zip(detector.detect(frames), times, strict=True):
        found: dict[str, Box] = {
            str(n): (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
            for n, box in zip(detections.data["class_name"], detections.xyxy, strict=True)
        }
        visible = {s.color: s.box_at(WIDTH, HEIGHT, t) for s in plan if s.box_at(WIDTH, HEIGHT, t)}
        wide = {c: b for c, b in visible.items() if b is not None and b[2] - b[0] >= 8}
        assert set(wide) <= set(found) <= set(visible), (t, found, visible)
        for color, box in wide.items():
            assert box_iou(found[color], box) > 0.8, (t, color, found[color], box)
            checked += 1
    return checked


def test_the_crafted_detector_finds_every_square(shapes_spec: ModelSpec) -> None:
    detector = Detector(shapes_spec)
    times = [float(t) for t in np.arange(0, DURATION, 0.3)]
    plan = moving_shapes_plan(WIDTH, HEIGHT, DURATION)
    frames = [render_shapes_frame(plan, WIDTH, HEIGHT, t) for t in times]
    assert _check_finds_plan(detector, frames, times) > 60
    black = [np.zeros((HEIGHT, WIDTH, 3), np.uint8), np.zeros((200, 500, 3), np.uint8)]
    assert [len(d) for d in detector.detect(black)] == [0, 0]
    registered = spec_from_dict({**shapes_spec_fields(), "model_id": SHAPES_MODEL_ID}, shapes_spec.path)
    assert registered == shapes_spec


def test_the_squares_survive_h264(tmp_path: Path, shapes_spec: ModelSpec) -> None:
    path = tmp_path / "shapes.mp4"
    plan = write_moving_shapes(path, fps=FPS, duration_s=DURATION)
    assert plan == moving_shapes_plan(WIDTH, HEIGHT, DURATION)
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="bgr24")
    meta = next(reader)
    assert tuple(meta["size"]) == (WIDTH, HEIGHT)
    decoded = [np.frombuffer(raw, np.uint8).reshape(HEIGHT, WIDTH, 3) for raw in reader]
    assert len(decoded) == int(DURATION * FPS)
    picks = list(range(0, len(decoded), 4))
    checked = _check_finds_plan(Detector(shapes_spec), [decoded[i] for i in picks], [i / FPS for i in picks])
    assert checked > 20


# --- Tracking across a seam ------------------------------------------------------------------


def _run_segment(
    workflow: Any, frames: list[int], stream: str, images: dict[int, np.ndarray]
) -> dict[int, dict[str, Any]]:
    """Records (like the worker's) of `frames`, tracked in one stream, in tasks of 8 frames."""
    records: dict[int, dict[str, Any]] = {}
    for start in range(0, len(frames), 8):
        chunk = frames[start : start + 8]
        metadata = [{"video_id": stream, "frame_number": i} for i in chunk]
        results = workflow.run([images[i] for i in chunk], {"frame_rate": FPS}, metadata=metadata)
        for index, result in zip(chunk, results, strict=True):
            records[index] = {
                "video": "shapes.mp4",
                "frame_index": index,
                "timestamp_s": index / FPS,
                "task_id": f"{stream}-{start}",
                "status": "ok",
                "error": None,
                "outputs": {"tracked": to_json_value(result["tracked"], (HEIGHT, WIDTH, 3))},
                "image_outputs": {"annotated": f"annotated/{index}.png"},
            }
    return records


def _owner(plan: list[ShapeTrack], record: dict[str, Any], prediction: dict[str, Any]) -> ShapeTrack | None:
    t = record["frame_index"] / FPS
    for shape in plan:
        box = shape.box_at(WIDTH, HEIGHT, t)
        if shape.color == prediction["class"] and box and box_iou(prediction_box(prediction), box) > 0.5:
            return shape
    return None


def test_each_square_keeps_one_id_across_the_seam(shapes_spec: ModelSpec) -> None:
    workflow = compile_workflow(
        json.loads(WORKFLOW.read_text()), models=MappingCatalog({SHAPES_MODEL_ID: shapes_spec})
    )
    assert workflow.image_outputs == ("annotated",)
    plan = moving_shapes_plan(WIDTH, HEIGHT, DURATION)
    count, seam, warmup = int(DURATION * FPS), int(SEAM_S * FPS), int(WARMUP_S * FPS)
    images = {i: render_shapes_frame(plan, WIDTH, HEIGHT, i / FPS) for i in range(count)}
    first = _run_segment(workflow, list(range(seam)), "shapes#0", images)
    second = _run_segment(workflow, list(range(seam - warmup, count)), "shapes#1", images)
    segments = [
        SegmentTracks(owned=list(first.values())),
        SegmentTracks(
            owned=[second[i] for i in range(seam, count)],
            warmup=[second[i] for i in range(seam - warmup, seam)],
        ),
    ]
    mappings = join_tracker_ids(segments)
    joined = [
        apply_tracker_ids(r, m) for segment, m in zip(segments, mappings, strict=True) for r in segment.owned
    ]
    assert [r["frame_index"] for r in joined] == list(range(count))

    ids: dict[ShapeTrack, set[int]] = defaultdict(set)
    tracked_frames: dict[ShapeTrack, int] = defaultdict(int)
    for record in joined:
        for prediction in record["outputs"]["tracked"]["predictions"]:
            shape = _owner(plan, record, prediction)
            assert shape is not None, (record["frame_index"], prediction)
            ids[shape].add(prediction["tracker_id"])
            tracked_frames[shape] += 1
    for shape in plan:
        visible = sum(1 for i in range(count) if shape.box_at(WIDTH, HEIGHT, i / FPS))
        assert len(ids[shape]) == 1, (shape, ids[shape])
        assert tracked_frames[shape] >= visible - 2, (shape, tracked_frames[shape], visible)
    every = [next(iter(ids[shape])) for shape in plan]
    assert len(set(every)) == len(plan), every
    # Without the join the second segment's tracker numbers its tracks afresh.
    raw = {p["tracker_id"] for r in segments[1].owned for p in r["outputs"]["tracked"]["predictions"]}
    assert raw != {mappings[1][t] for t in raw}


# --- join_tracker_ids --------------------------------------------------------------------------


def _pred(tracker_id: int, x: float, cls: str = "red", y: float = 50.0) -> dict[str, Any]:
    return {
        "x": x,
        "y": y,
        "width": 40.0,
        "height": 40.0,
        "confidence": 0.9,
        "class": cls,
        "class_id": 0,
        "detection_id": f"d{tracker_id}-{x}",
        "tracker_id": tracker_id,
    }


def _record(frame: int, *predictions: dict[str, Any]) -> dict[str, Any]:
    return {
        "video": "v.mp4",
        "frame_index": frame,
        "timestamp_s": frame / 5,
        "status": "ok",
        "outputs": {"tracked": {"image": {"width": 640, "height": 360}, "predictions": list(predictions)}},
        "image_outputs": {},
    }


def test_unmatched_ids_are_fresh_and_never_collide() -> None:
    first = SegmentTracks(owned=[_record(f, _pred(1, 100 + 5 * f), _pred(4, 300, "blue")) for f in range(10)])
    second = SegmentTracks(
        # local 1 is the red object (global 1); local 4 is the blue one but a different class
        # than the green object it overlaps; local 2 is new.
        warmup=[_record(f, _pred(1, 101 + 5 * f), _pred(4, 300, "green")) for f in range(7, 10)],
        owned=[_record(f, _pred(1, 100 + 5 * f), _pred(2, 500)) for f in range(10, 15)],
    )
    first_map, second_map = join_tracker_ids([first, second])
    assert first_map == {1: 1, 4: 4}
    assert second_map[1] == 1
    assert second_map[2] > 4 and second_map[4] > 4 and second_map[2] != second_map[4]
    record = apply_tracker_ids(second.owned[0], second_map)
    assert [p["tracker_id"] for p in record["outputs"]["tracked"]["predictions"]] == [1, second_map[2]]
    assert second.owned[0]["outputs"]["tracked"]["predictions"][1]["tracker_id"] == 2, "input unchanged"


def test_matches_are_one_to_one_and_by_majority() -> None:
    # Two objects side by side; segment 1 swaps their local numbering; one noisy frame disagrees.
    first = SegmentTracks(owned=[_record(f, _pred(7, 100), _pred(8, 200)) for f in range(6)])
    warmup = [_record(f, _pred(1, 200), _pred(2, 100)) for f in range(2, 5)]
    warmup.append(_record(5, _pred(1, 100), _pred(2, 200)))
    second = SegmentTracks(owned=[_record(6, _pred(1, 200), _pred(2, 100))], warmup=warmup)
    _, mapping = join_tracker_ids([first, second])
    assert mapping == {1: 8, 2: 7}
    # Far apart boxes (IoU < 0.5) do not match.
    far = SegmentTracks(owned=[_record(6, _pred(3, 130))], warmup=[_record(5, _pred(3, 130))])
    assert join_tracker_ids([first, far])[1] == {3: 9}


def test_three_segments_compose() -> None:
    s0 = SegmentTracks(owned=[_record(f, _pred(0, 10.0 * f)) for f in range(10)])
    s1 = SegmentTracks(
        warmup=[_record(f, _pred(5, 10.0 * f)) for f in range(8, 10)],
        owned=[_record(f, _pred(5, 10.0 * f), _pred(6, 400, y=200)) for f in range(10, 20)],
    )
    s2 = SegmentTracks(
        warmup=[_record(f, _pred(0, 10.0 * f), _pred(1, 400, y=200)) for f in range(18, 20)],
        owned=[
            _record(f, _pred(0, 10.0 * f), _pred(1, 400, y=200), _pred(2, 50, "blue")) for f in range(20, 30)
        ],
    )
    m0, m1, m2 = join_tracker_ids([s0, s1, s2])
    assert m0 == {0: 0}
    assert m1 == {5: 0, 6: 1}
    assert m2 == {0: 0, 1: 1, 2: 2}
    nested = {"outputs": {"crops": [[_pred(2, 50, "blue")], {"inner": _pred(1, 400)}], "count": 3}}
    rewritten = apply_tracker_ids(nested, {2: 20, 1: 10})
    assert rewritten["outputs"]["crops"][0][0]["tracker_id"] == 20
    assert rewritten["outputs"]["crops"][1]["inner"]["tracker_id"] == 10
    assert rewritten["outputs"]["count"] == 3
    assert join_tracker_ids([]) == []
