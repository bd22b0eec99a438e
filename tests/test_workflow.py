"""Workflows: the compiler refuses malformed definitions with clear messages, and a compiled
workflow runs the real text detector on real photographs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import supervision as sv

from sluice.errors import InvalidArgument
from sluice.models import ModelSpec, register_model
from sluice.workflow import compile_workflow, serialize_detections, to_json_value
from tests.model_fixtures import constant_yolov8_model, photo, yolov8_output

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "workflows" / "text-detection.json"


def example() -> dict[str, Any]:
    definition: dict[str, Any] = json.loads(EXAMPLE.read_text())
    return definition


def changed(edit: Any) -> dict[str, Any]:
    """The example workflow after `edit(definition)`."""
    definition = copy.deepcopy(example())
    edit(definition)
    return definition


def step(definition: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in definition["steps"] if s["name"] == name)
    return found


def _cycle(d: dict[str, Any]) -> None:
    d["steps"] += [
        {"type": "sluice/bounding_box_visualization@v1", "name": "a", "image": "$steps.b.image",
         "predictions": "$steps.detector.predictions"},
        {"type": "sluice/bounding_box_visualization@v1", "name": "b", "image": "$steps.a.image",
         "predictions": "$steps.detector.predictions"},
    ]  # fmt: skip


def _add_step(block_type: str) -> Any:
    return lambda d: d["steps"].append({"type": block_type, "name": "extra"})


MALFORMED: list[tuple[str, Any, str]] = [
    ("not json", "{not json", "workflow is not valid JSON"),
    ("not an object", "[1, 2]", "workflow must be a JSON object"),
    ("no version", changed(lambda d: d.pop("version")), "workflow needs a 'version'"),
    ("steps not a list", changed(lambda d: d.update(steps={})), "workflow 'steps' must be a list"),
    ("no image input", changed(lambda d: d["inputs"].pop(0)),
     "exactly one WorkflowImage input; found none"),
    ("two image inputs", changed(lambda d: d["inputs"].append({"type": "WorkflowImage", "name": "other"})),
     "exactly one WorkflowImage input; found image, other"),
    ("unknown input type", changed(lambda d: d["inputs"].append({"type": "WorkflowVideo", "name": "v"})),
     "input 'v': unknown input type 'WorkflowVideo'"),
    ("duplicate step names", changed(lambda d: step(d, "boxes").update(name="detector")),
     "step name 'detector' is used twice"),
    ("unknown block", changed(lambda d: step(d, "boxes").update(type="acme/magic@v1")),
     "step 'boxes': unknown block type 'acme/magic@v1'; known: "
     "roboflow_core/bounding_box_visualization@v1"),
    ("missing model id", changed(lambda d: step(d, "detector").pop("model_id")),
     "step 'detector': property 'model_id' is required"),
    ("unknown model", changed(lambda d: step(d, "detector").update(model_id="acme/nothing")),
     "step 'detector': property 'model_id': unknown model 'acme/nothing'; known models: "),
    ("missing step", changed(lambda d: step(d, "boxes").update(predictions="$steps.nope.predictions")),
     "step 'boxes': property 'predictions': $steps.nope.predictions refers to a step that does not exist"),
    ("missing input", changed(lambda d: step(d, "detector").update(image="$inputs.picture")),
     "step 'detector': property 'image': $inputs.picture refers to an input that does not exist"),
    ("missing step output", changed(lambda d: d["outputs"][0].update(selector="$steps.detector.boxes")),
     "output 'predictions': $steps.detector.boxes: step 'detector' has no output 'boxes'"),
    ("wrong kind", changed(lambda d: step(d, "boxes").update(predictions="$inputs.image")),
     "step 'boxes': property 'predictions': expects object_detection_prediction, but $inputs.image is image"),
    ("literal image", changed(lambda d: step(d, "detector").update(image="photo.jpg")),
     "step 'detector': property 'image': must be a selector"),
    ("malformed selector", changed(lambda d: step(d, "boxes").update(predictions="$steps.detector")),
     "step 'boxes': property 'predictions': malformed selector '$steps.detector'"),
    ("confidence out of range", changed(lambda d: step(d, "detector").update(confidence=1.5)),
     "step 'detector': property 'confidence': must be a number between 0 and 1"),
    ("bad parameter default", changed(lambda d: d["inputs"][1].update(default_value="high")),
     "step 'detector': property 'confidence': default of $inputs.confidence: must be a number"),
    ("unknown property", changed(lambda d: step(d, "boxes").update(colour="red")),
     "step 'boxes': unknown property 'colour'"),
    ("cycle", changed(_cycle), "steps form a cycle: 'a' -> 'b' -> 'a'"),
    ("custom python", changed(_add_step("roboflow_core/custom_python@v1")),
     "step 'extra': block 'roboflow_core/custom_python@v1' is refused: it runs arbitrary Python code"),
    ("file sink", changed(_add_step("roboflow_core/local_file_sink@v1")),
     "step 'extra': block 'roboflow_core/local_file_sink@v1' is refused: it writes to the worker's"),
    ("secrets", changed(_add_step("roboflow_core/environment_secrets_store@v1")),
     "step 'extra': block 'roboflow_core/environment_secrets_store@v1' is refused: it reads secrets"),
    ("dynamic blocks", changed(lambda d: d.update(dynamic_blocks_definitions=[])),
     "dynamic blocks are refused"),
    ("bad step name", changed(lambda d: step(d, "boxes").update(name="my.boxes")),
     "steps[1]: name 'my.boxes' must be letters"),
    ("duplicate outputs", changed(lambda d: d["outputs"].append(dict(d["outputs"][0]))),
     "output name 'predictions' is used twice"),
    ("wildcard output", changed(lambda d: d["outputs"][0].update(selector="$steps.detector.*")),
     "wildcard selector"),
]  # fmt: skip


@pytest.mark.parametrize(("definition", "message"), [(d, m) for _, d, m in MALFORMED],
                         ids=[name for name, _, _ in MALFORMED])  # fmt: skip
def test_malformed_workflows_are_refused(definition: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        compile_workflow(definition)
    assert message in raised.value.message


def test_the_example_compiles_once_by_content() -> None:
    workflow = compile_workflow(example())
    assert workflow.output_names == ("predictions", "annotated")
    assert workflow.image_outputs == ("annotated",)
    assert workflow.parameters == {"confidence": 0.4}
    reordered = json.dumps(example(), sort_keys=True, indent=4)
    assert compile_workflow(reordered) is workflow
    assert compile_workflow(example(), intra_op_threads=1) is not workflow


def test_roboflow_block_names_are_accepted() -> None:
    definition = changed(lambda d: None)
    detector = step(definition, "detector")
    detector["type"] = "roboflow_core/roboflow_object_detection_model@v2"
    detector["images"] = detector.pop("image")
    detector["disable_active_learning"] = True
    step(definition, "boxes")["type"] = "roboflow_core/bounding_box_visualization@v1"
    workflow = compile_workflow(definition)
    (result,) = workflow.run([photo("page.png")])
    assert len(result["predictions"]) >= 4


def test_the_example_runs_on_real_photographs() -> None:
    workflow = compile_workflow(example())
    page, coffee = photo("page.png"), photo("coffee.png")
    results = workflow.run([page, coffee, page])
    assert len(results) == 3
    for result, image in zip(results, [page, coffee, page], strict=True):
        assert set(result) == {"predictions", "annotated"}
        assert isinstance(result["predictions"], sv.Detections)
        assert result["annotated"].shape == image.shape
    page_boxes = results[0]["predictions"]
    assert 4 <= len(page_boxes) <= 10
    assert not np.array_equal(results[0]["annotated"], page), "boxes are drawn"
    assert np.array_equal(page, photo("page.png")), "the input is left as is"
    np.testing.assert_allclose(results[2]["predictions"].xyxy, page_boxes.xyxy)
    serialized = to_json_value(page_boxes, page.shape)
    json.dumps(serialized)
    assert serialized["image"] == {"width": 384, "height": 191}
    assert {p["class"] for p in serialized["predictions"]} == {"text"}


def test_parameters_are_checked_and_used() -> None:
    workflow = compile_workflow(example())
    page = photo("page.png")
    default = len(workflow.run([page])[0]["predictions"])
    strict = len(workflow.run([page], {"confidence": 0.99})[0]["predictions"])
    assert strict < default
    with pytest.raises(
        InvalidArgument, match="unknown parameter 'threshold'; workflow parameters: confidence"
    ):
        workflow.run([page], {"threshold": 0.5})
    with pytest.raises(InvalidArgument, match="step 'detector': property 'confidence': must be a number"):
        workflow.run([page], {"confidence": "high"})


def test_images_must_be_bgr_arrays() -> None:
    workflow = compile_workflow(example())
    assert workflow.run([]) == []
    with pytest.raises(InvalidArgument, match=r"image 0: expected shape \[H, W, 3\]"):
        workflow.run([np.zeros((10, 10), np.uint8)])


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
    assert prediction == {"x": 30.0, "y": 50.0, "width": 40.0, "height": 60.0,
                          "confidence": 0.8765, "class": "bird", "class_id": 2}  # fmt: skip


def test_a_registered_yolov8_model_runs_in_a_workflow(tmp_path: Path) -> None:
    # One "person" box at model-input cx=320, cy=320, w=100, h=200 in a 640x640 input.
    raw = yolov8_output([(320, 320, 100, 200)], [1], [0.8], num_classes=2, extra_anchors=10)
    path = constant_yolov8_model(tmp_path / "people.onnx", raw)
    register_model(ModelSpec(model_id="test/people", path=path, class_names=("car", "person")))
    definition = changed(lambda d: step(d, "detector").update(model_id="test/people"))
    (result,) = compile_workflow(definition).run([np.zeros((640, 640, 3), np.uint8)])
    (prediction,) = serialize_detections(result["predictions"], (640, 640, 3))["predictions"]
    assert (prediction["x"], prediction["y"], prediction["width"], prediction["height"]) == (
        320,
        320,
        100,
        200,
    )
    assert (prediction["class"], prediction["class_id"]) == ("person", 1)
