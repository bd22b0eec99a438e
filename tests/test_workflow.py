"""Workflows run on real photographs with the real PP-OCR models: two-stage text reading nested
per detection, parameters, wildcard outputs, Roboflow names, and a tracker on moving text."""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import supervision as sv

from sluice.errors import InvalidArgument
from sluice.models import (
    ModelSpec,
    Recognizer,
    load_classifier,
    load_detector,
    load_recognizer,
    register_model,
)
from sluice.workflow import compile_workflow, serialize_detections, to_json_value
from sluice.workflow.blocks.base import BlockManifest, Element, Property
from sluice.workflow.blocks.byte_tracker.v1 import ByteTracker
from sluice.workflow.detections import DETECTION_ID, PARENT_ID
from sluice.workflow.kinds import Kind
from sluice.workflow.registry import REGISTRY
from tests.images import PHOTOS, photographs
from tests.model_fixtures import constant_yolov8_model, photo, yolov8_output

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "workflows"


def example(name: str) -> dict[str, Any]:
    definition: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return definition


def step(definition: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in definition["steps"] if s["name"] == name)
    return found


def with_outputs(definition: dict[str, Any], **selectors: str) -> dict[str, Any]:
    changed = copy.deepcopy(definition)
    changed["outputs"] += [{"type": "JsonField", "name": n, "selector": s} for n, s in selectors.items()]
    return changed


@pytest.fixture(scope="module")
def reading() -> Any:
    return compile_workflow(example("text-reading.json"))


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return list(photographs())


@pytest.fixture(scope="module")
def read_photos(reading: Any, photos: list[np.ndarray]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = reading.run(photos)
    return results


# --- The two-stage workflow -----------------------------------------------------------------


def test_two_stage_detections_equal_the_detector_alone(
    photos: list[np.ndarray], read_photos: list[Any]
) -> None:
    direct = load_detector("sluice/text-detector").detect(photos, confidence=0.4)
    assert len(read_photos) == len(photos)
    for result, alone in zip(read_photos, direct, strict=True):
        np.testing.assert_allclose(result["predictions"].xyxy, alone.xyxy)
        np.testing.assert_allclose(result["predictions"].confidence, np.asarray(alone.confidence))
    assert sum(len(r["predictions"]) for r in read_photos) >= 8


def test_texts_are_nested_per_detection_and_equal_the_recognizer_on_each_crop(
    photos: list[np.ndarray], read_photos: list[Any]
) -> None:
    recognizer = load_recognizer("sluice/text-recognizer")
    for image, result in zip(photos, read_photos, strict=True):
        boxes = result["predictions"]
        assert isinstance(result["texts"], list) and len(result["texts"]) == len(boxes)
        crops = [sv.crop_image(image, box) for box in boxes.xyxy]
        assert result["texts"] == [text for text, _ in recognizer.recognize(crops)]
    page = read_photos[PHOTOS.index("page.png")]
    assert any(text.startswith("Region-based") for text in page["texts"]), page["texts"]


def test_detections_and_texts_refer_to_each_other(reading: Any) -> None:
    definition = with_outputs(example("text-reading.json"), parents="$steps.ocr.parent_id")
    (result,) = compile_workflow(definition).run([photo("page.png")])
    boxes = result["predictions"]
    assert result["parents"] == list(boxes.data[DETECTION_ID])
    assert set(boxes.data[PARENT_ID]) == {"image"}
    record = to_json_value(result["predictions"], photo("page.png").shape)
    assert [p["detection_id"] for p in record["predictions"]] == result["parents"]


def test_annotated_image_has_boxes_and_labels(read_photos: list[Any], photos: list[np.ndarray]) -> None:
    for image, result in zip(photos, read_photos, strict=True):
        assert result["annotated"].shape == image.shape
        if len(result["predictions"]):
            assert not np.array_equal(result["annotated"], image)
    assert np.array_equal(photos[0], photographs()[0]), "inputs are left as they are"


def test_a_whole_result_serialises_to_json(read_photos: list[Any], photos: list[np.ndarray]) -> None:
    record = {k: to_json_value(v, photos[0].shape) for k, v in read_photos[0].items() if k != "annotated"}
    assert json.loads(json.dumps(record))["texts"] == read_photos[0]["texts"]


def test_fan_out_with_no_detections_gives_empty_lists(reading: Any) -> None:
    blank = np.full((120, 200, 3), 255, np.uint8)
    results = reading.run([blank, photo("page.png"), blank], {"confidence": 1.0})
    for result in results:
        assert len(result["predictions"]) == 0
        assert result["texts"] == []
    (mixed, _) = reading.run([photo("page.png"), blank])
    assert len(mixed["texts"]) == len(mixed["predictions"]) > 0


def test_wildcard_outputs_give_every_output_of_a_step() -> None:
    definition = with_outputs(
        example("text-reading.json"), ocr_all="$steps.ocr.*", detector_all="$steps.detector.*"
    )
    (result,) = compile_workflow(definition).run([photo("page.png")])
    assert set(result["detector_all"]) == {"predictions"}
    assert len(result["ocr_all"]) == len(result["predictions"])
    assert all(set(entry) == {"result", "confidence", "parent_id"} for entry in result["ocr_all"])
    assert [entry["result"] for entry in result["ocr_all"]] == result["texts"]


def test_crops_as_an_output_are_nested_and_serialised_without_pixels() -> None:
    definition = with_outputs(example("text-reading.json"), crops="$steps.crop.crops")
    workflow = compile_workflow(definition)
    assert "crops" not in workflow.image_outputs
    (result,) = workflow.run([photo("page.png")])
    assert len(result["crops"]) == len(result["predictions"])
    (first, *_) = to_json_value(result["crops"], (1, 1, 3))
    assert first["type"] == "image" and first["width"] > 0


# --- Parameters -----------------------------------------------------------------------------


def test_parameters_have_defaults_and_overrides(reading: Any) -> None:
    page = photo("page.png")
    assert reading.parameters == {"confidence": 0.4}
    default = reading.run([page])[0]
    same = reading.run([page], {"confidence": 0.4})[0]
    strict = reading.run([page], {"confidence": 0.99})[0]
    np.testing.assert_allclose(default["predictions"].xyxy, same["predictions"].xyxy)
    assert len(strict["predictions"]) < len(default["predictions"])
    assert len(strict["texts"]) == len(strict["predictions"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"threshold": 0.5}, "unknown parameter 'threshold'; workflow parameters: confidence"),
        ({"confidence": "high"}, "parameter 'confidence': expects float_zero_to_one, got 'high'"),
        ({"confidence": 2}, "parameter 'confidence': expects float_zero_to_one, got 2"),
    ],
)
def test_wrong_parameters_are_refused_by_name(reading: Any, params: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        reading.run([photo("page.png")], params)


def test_parameter_values_are_checked_by_the_property_they_feed() -> None:
    definition = example("text-detection.json")
    workflow = compile_workflow(definition)
    with pytest.raises(InvalidArgument, match="step 'detector': property 'confidence': must be a number"):
        workflow.run([photo("page.png")], {"confidence": "high"})
    definition["inputs"].append(
        {"type": "WorkflowParameter", "name": "model", "default_value": "sluice/text-detector"}
    )
    step(definition, "detector")["model_id"] = "$inputs.model"
    workflow = compile_workflow(definition)
    with pytest.raises(
        InvalidArgument, match="step 'detector': property 'model_id': model 'sluice/orientation' has"
    ):
        workflow.run([photo("page.png")], {"model": "sluice/orientation"})


def test_images_and_metadata_are_checked(reading: Any) -> None:
    assert reading.run([]) == []
    with pytest.raises(InvalidArgument, match=r"image 0: expected shape \[H, W, 3\]"):
        reading.run([np.zeros((10, 10), np.uint8)])
    with pytest.raises(InvalidArgument, match="metadata: expected one entry per image"):
        reading.run([photo("page.png")], metadata=[{}, {}])


# --- Roboflow compatibility -----------------------------------------------------------------


OURS_EXTRA_STEPS = [
    {
        "type": "sluice/property_definition@v1",
        "name": "count",
        "data": "$steps.detector.predictions",
        "property": "count",
    },
    {
        "type": "sluice/detections_filter@v1",
        "name": "sure",
        "predictions": "$steps.detector.predictions",
        "confidence": 0.6,
    },
]


def test_a_roboflow_definition_runs_unchanged_and_equals_ours(photos: list[np.ndarray]) -> None:
    theirs = compile_workflow(example("roboflow-text-reading.json")).run(photos)
    ours_definition = with_outputs(
        example("text-reading.json"), count="$steps.count.output", sure="$steps.sure.predictions"
    )
    ours_definition["steps"] += OURS_EXTRA_STEPS
    ours = compile_workflow(ours_definition).run(photos)
    for mine, other in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine["predictions"].xyxy, other["predictions"].xyxy)
        assert mine["texts"] == other["texts"]
        assert mine["count"] == other["count"] == len(mine["predictions"])
        np.testing.assert_allclose(mine["sure"].xyxy, other["sure"].xyxy)
        assert np.all(other["sure"].confidence >= 0.6)
        assert other["annotated"].shape == mine["annotated"].shape


# --- Other blocks ---------------------------------------------------------------------------


def _detect_then(*steps: dict[str, Any], **outputs: str) -> dict[str, Any]:
    definition = example("text-detection.json")
    definition["steps"] += list(steps)
    return with_outputs(definition, **outputs)


def test_classification_on_images_and_on_crops_equals_the_classifier() -> None:
    definition = _detect_then(
        {
            "type": "sluice/classification_model@v1",
            "name": "whole",
            "image": "$inputs.image",
            "model_id": "sluice/orientation",
        },
        {
            "type": "sluice/dynamic_crop@v1",
            "name": "crop",
            "image": "$inputs.image",
            "predictions": "$steps.detector.predictions",
        },
        {
            "type": "roboflow_core/roboflow_classification_model@v2",
            "name": "each",
            "images": "$steps.crop.crops",
            "model_id": "sluice/orientation",
        },
        whole="$steps.whole.top",
        each="$steps.each.predictions",
    )
    images = [photo("page.png"), photo("astronaut.png")]
    results = compile_workflow(definition).run(images)
    classifier = load_classifier("sluice/orientation")
    for image, result in zip(images, results, strict=True):
        assert result["whole"] == classifier.classify([image])[0].class_name
        crops = [sv.crop_image(image, box) for box in result["predictions"].xyxy]
        assert [p["top"] for p in result["each"]] == [c.class_name for c in classifier.classify(crops)]
        assert [p["parent_id"] for p in result["each"]] == list(result["predictions"].data[DETECTION_ID])


def test_filter_transformation_and_properties() -> None:
    definition = _detect_then(
        {
            "type": "sluice/detections_filter@v1",
            "name": "big",
            "predictions": "$steps.detector.predictions",
            "min_area": 6000,
        },
        {
            "type": "sluice/detections_transformation@v1",
            "name": "top",
            "predictions": "$steps.detector.predictions",
            "top_k": 2,
            "offset_x": 10,
            "offset_y": 4,
        },
        {
            "type": "sluice/property_definition@v1",
            "name": "names",
            "data": "$steps.top.predictions",
            "property": "class_names",
        },
        big="$steps.big.predictions",
        top="$steps.top.predictions",
        names="$steps.names.output",
    )
    page = photo("page.png")
    (result,) = compile_workflow(definition).run([page])
    found = result["predictions"]
    assert np.all(result["big"].box_area >= 6000) and 0 < len(result["big"]) < len(found)
    assert list(result["big"].data[DETECTION_ID]) == [
        i for i, area in zip(found.data[DETECTION_ID], found.box_area, strict=True) if area >= 6000
    ]
    best = np.argsort(-found.confidence, kind="stable")[:2]
    grown = found.xyxy[best] + np.array([-5, -2, 5, 2])
    grown[:, 0::2] = grown[:, 0::2].clip(0, page.shape[1])
    grown[:, 1::2] = grown[:, 1::2].clip(0, page.shape[0])
    np.testing.assert_allclose(result["top"].xyxy, grown, atol=1e-4)
    assert result["names"] == ["text", "text"]


def test_a_registered_yolov8_model_runs_in_a_workflow(tmp_path: Path) -> None:
    # One "person" box at model-input cx=320, cy=320, w=100, h=200 in a 640x640 input.
    raw = yolov8_output([(320, 320, 100, 200)], [1], [0.8], num_classes=2, extra_anchors=10)
    path = constant_yolov8_model(tmp_path / "people.onnx", raw)
    register_model(ModelSpec(model_id="test/people", path=path, class_names=("car", "person")))
    definition = example("text-detection.json")
    step(definition, "detector")["model_id"] = "test/people"
    (result,) = compile_workflow(definition).run([np.zeros((640, 640, 3), np.uint8)])
    (prediction,) = serialize_detections(result["predictions"], (640, 640, 3))["predictions"]
    box = (prediction["x"], prediction["y"], prediction["width"], prediction["height"])
    assert box == (320, 320, 100, 200)
    assert (prediction["class"], prediction["class_id"], prediction["parent_id"]) == ("person", 1, "image")


def test_serialize_detections_in_roboflow_shape() -> None:
    det = sv.Detections(
        xyxy=np.array([[10, 20, 50, 80]], dtype=np.float32),
        confidence=np.array([0.87654], dtype=np.float32),
        class_id=np.array([2]),
        data={"class_name": np.array(["bird"])},
    )
    out = serialize_detections(det, (100, 200, 3))
    assert out["image"] == {"width": 200, "height": 100}
    (prediction,) = out["predictions"]
    detection_id = prediction.pop("detection_id")
    assert isinstance(detection_id, str) and len(detection_id) == 36
    assert prediction == {
        "x": 30.0,
        "y": 50.0,
        "width": 40.0,
        "height": 60.0,
        "confidence": 0.8765,
        "class": "bird",
        "class_id": 2,
    }


# --- Tracking -------------------------------------------------------------------------------


def moving_text_frames(count: int, start: tuple[int, int], step_px: int) -> list[np.ndarray]:
    """White frames with the word SLUICE moving right by `step_px` pixels per frame."""
    frames = []
    for index in range(count):
        frame = np.full((240, 480, 3), 255, np.uint8)
        x, y = start[0] + index * step_px, start[1]
        cv2.putText(frame, "SLUICE", (x, y), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (0, 0, 0), 3)
        frames.append(frame)
    return frames


TRACKING = {
    "version": "1.0",
    "inputs": [{"type": "WorkflowImage", "name": "frame"}],
    "steps": [
        {
            "type": "sluice/object_detection_model@v1",
            "name": "detector",
            "image": "$inputs.frame",
            "model_id": "sluice/text-detector",
        },
        {
            "type": "roboflow_core/byte_tracker@v3",
            "name": "tracker",
            "image": "$inputs.frame",
            "detections": "$steps.detector.predictions",
        },
    ],
    "outputs": [
        {"type": "JsonField", "name": "tracked", "selector": "$steps.tracker.tracked_detections"},
        {"type": "JsonField", "name": "new", "selector": "$steps.tracker.new_instances"},
    ],
}


def test_the_tracker_keeps_ids_per_video_stream() -> None:
    workflow = compile_workflow(TRACKING)
    assert workflow.image_input_name == "frame"
    left, right = moving_text_frames(6, (20, 80), 12), moving_text_frames(6, (60, 180), 8)
    # Both streams in each batch, interleaved; batches follow each other like a worker's tasks.
    ids: dict[str, list[int]] = {"a": [], "b": []}
    for start in (0, 3):
        frames, metadata = [], []
        for index in range(start, start + 3):
            frames += [left[index], right[index]]
            metadata += [{"video_id": "a", "frame_number": index}, {"video_id": "b", "frame_number": index}]
        for result, meta in zip(workflow.run(frames, metadata=metadata), metadata, strict=True):
            ids[str(meta["video_id"])] += [int(t) for t in result["tracked"].tracker_id]
    for stream in ("a", "b"):
        assert len(ids[stream]) >= 4, ids
        assert len(set(ids[stream])) == 1, f"stream {stream} keeps one track: {ids}"
    workflow.end_stream("a")
    (again,) = workflow.run([left[3]], metadata=[{"video_id": "a", "frame_number": 3}])
    assert set(again["tracked"].tracker_id.tolist()) <= set(), "a stream that ended starts afresh"


def _boxes(x: float) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array([[x, 50, x + 40, 90]], dtype=np.float32),
        confidence=np.array([0.9], dtype=np.float32),
        class_id=np.array([0]),
    )


def test_tracker_streams_do_not_mix() -> None:
    tracker = ByteTracker()
    settings = {
        "track_activation_threshold": 0.25,
        "lost_track_buffer": 30,
        "minimum_matching_threshold": 0.8,
        "minimum_consecutive_frames": 1,
        "frame_rate": 30,
    }
    seen: dict[str, list[int]] = {"a": [], "b": [], "default": []}
    for frame in range(6):
        batch = [
            {"detections": _boxes(10 + 5 * frame), **settings},
            {"detections": _boxes(300 - 5 * frame), **settings},
            {"detections": _boxes(150 + 3 * frame), **settings},
        ]
        elements = [
            Element((0,), "image", {"video_id": "a", "frame_number": frame}),
            Element((1,), "image", {"video_id": "b", "frame_number": frame}),
            Element((2,), "image", {}),
        ]
        for output, element in zip(tracker.run(batch, elements), elements, strict=True):
            stream = element.metadata.get("video_id", "default")
            seen[stream] += [int(t) for t in output["tracked_detections"].tracker_id]
    for stream, ids in seen.items():
        assert len(ids) >= 4 and len(set(ids)) == 1, (stream, ids)


# --- Execution ------------------------------------------------------------------------------


def test_crops_of_every_image_reach_the_recogniser_in_one_call(
    reading: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = Recognizer.recognize

    def counting(self: Recognizer, images: Any) -> list[tuple[str, float]]:
        calls.append(len(images))
        return original(self, images)

    monkeypatch.setattr(Recognizer, "recognize", counting)
    results = reading.run([photo("page.png"), photo("text.png"), photo("page.png")])
    assert calls == [sum(len(r["predictions"]) for r in results)]


class _Meet:
    """A block that waits until `parties` steps are inside `run` at the same time."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self._barrier = barrier

    def run(self, batch: list[dict[str, Any]], elements: Any) -> list[dict[str, Any]]:
        self._barrier.wait()
        return [{"image": item["image"]} for item in batch]


def test_steps_of_one_layer_run_at_the_same_time(monkeypatch: pytest.MonkeyPatch) -> None:
    barrier = threading.Barrier(2, timeout=10)
    manifest = BlockManifest(
        type="acme/meet@v1",
        description="Meets another step.",
        properties={"image": Property((Kind.IMAGE,), required=True, selector_only=True)},
        outputs={"image": Kind.IMAGE},
        build=lambda: _Meet(barrier),
    )
    monkeypatch.setattr(REGISTRY, "_discover", lambda: [manifest])
    REGISTRY.reload_plugins()
    try:
        definition = {
            "version": "1.0",
            "inputs": [{"type": "WorkflowImage", "name": "image"}],
            "steps": [
                {"type": "acme/meet@v1", "name": "one", "image": "$inputs.image"},
                {"type": "acme/meet@v1", "name": "two", "image": "$inputs.image"},
            ],
            "outputs": [{"type": "JsonField", "name": "out", "selector": "$steps.two.image"}],
        }
        (result,) = compile_workflow(definition).run([photo("page.png")])
        assert result["out"].shape == photo("page.png").shape
    finally:
        monkeypatch.undo()
        REGISTRY.reload_plugins()
