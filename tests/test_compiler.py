"""The workflow compiler: every malformed definition is refused with a message that names the
step (or input, or output) and the property at fault; plugin blocks join through entry points."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sluice.errors import InvalidArgument
from sluice.workflow import compile_workflow, plugins
from sluice.workflow.blocks.base import BlockManifest, Property
from sluice.workflow.kinds import Kind
from sluice.workflow.registry import REGISTRY, BlockRegistry

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "workflows"


def reading() -> dict[str, Any]:
    """The two-stage text-reading example (detector -> crop -> OCR -> boxes and labels)."""
    definition: dict[str, Any] = json.loads((EXAMPLES / "text-reading.json").read_text())
    return definition


def step(definition: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in definition["steps"] if s["name"] == name)
    return found


def changed(edit: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """The example after `edit(definition)`."""
    definition = copy.deepcopy(reading())
    edit(definition)
    return definition


def edit_step(name: str, /, **fields: Any) -> dict[str, Any]:
    return changed(lambda d: step(d, name).update(fields))


def add_step(entry: dict[str, Any]) -> dict[str, Any]:
    return changed(lambda d: d["steps"].append(entry))


def add_input(entry: dict[str, Any]) -> dict[str, Any]:
    return changed(lambda d: d["inputs"].append(entry))


def add_output(name: str, selector: str) -> dict[str, Any]:
    return changed(lambda d: d["outputs"].append({"type": "JsonField", "name": name, "selector": selector}))


def _cycle(d: dict[str, Any]) -> None:
    viz = {"type": "sluice/bounding_box_visualization@v1", "predictions": "$steps.detector.predictions"}
    d["steps"] += [
        {**viz, "name": "a", "image": "$steps.b.image"},
        {**viz, "name": "b", "image": "$steps.a.image"},
    ]


def _two_unsupported(d: dict[str, Any]) -> None:
    d["steps"] += [
        {"type": "roboflow_core/segment_anything@v1", "name": "sam", "images": "$inputs.image"},
        {"type": "roboflow_core/clip_comparison@v1", "name": "clip", "images": "$inputs.image"},
    ]


PER_IMAGE_LIST = {"type": "sluice/property_definition@v1", "name": "names",
                  "data": "$steps.detector.predictions", "property": "class_names"}  # fmt: skip

# (case id, definition, fragments the message must hold: where, which property, why)
MALFORMED: list[tuple[str, Any, tuple[str, ...]]] = [
    ("not json", "{not json", ("workflow is not valid JSON",)),
    ("not an object", "[1, 2]", ("workflow must be a JSON object",)),
    ("no version", changed(lambda d: d.pop("version")), ("workflow", "'version'")),
    ("steps not a list", changed(lambda d: d.update(steps={})), ("workflow", "'steps' must be a list")),
    (
        "step not an object",
        changed(lambda d: d["steps"].insert(0, "detector")),
        ("steps[0]", "must be an object"),
    ),
    ("step without name", changed(lambda d: d["steps"][1].pop("name")), ("steps[1]", "'name'")),
    ("bad step name", edit_step("boxes", name="my.boxes"), ("steps[3]", "name 'my.boxes'")),
    ("no image input", changed(lambda d: d["inputs"].pop(0)), ("WorkflowImage input", "found none")),
    (
        "two image inputs",
        add_input({"type": "WorkflowImage", "name": "other"}),
        ("WorkflowImage input", "found image, other"),
    ),
    (
        "unknown input type",
        add_input({"type": "WorkflowVideo", "name": "v"}),
        ("input 'v'", "unknown input type 'WorkflowVideo'"),
    ),
    (
        "duplicate input",
        add_input({"type": "WorkflowParameter", "name": "confidence"}),
        ("input name 'confidence'", "used twice"),
    ),
    (
        "bad parameter kind",
        changed(lambda d: d["inputs"][1].update(kind=5)),
        ("input 'confidence'", "property 'kind'"),
    ),
    (
        "parameter default of the wrong kind",
        changed(lambda d: d["inputs"][1].update(default_value="high")),
        ("input 'confidence'", "property 'default_value'", "expects float_zero_to_one, got 'high'"),
    ),
    (
        "parameter default wrong for the property",
        changed(lambda d: d["inputs"][1].update(default_value=2, kind=[])),
        (
            "step 'detector'",
            "property 'confidence'",
            "default of $inputs.confidence: must be a number between 0 and 1",
        ),
    ),
    (
        "unknown block",
        edit_step("boxes", type="acme/magic@v1"),
        ("step 'boxes'", "type 'acme/magic@v1'", "unsupported block types"),
    ),
    (
        "several unsupported roboflow blocks",
        changed(_two_unsupported),
        (
            "step 'sam' type 'roboflow_core/segment_anything@v1'",
            "step 'clip' type 'roboflow_core/clip_comparison@v1'",
        ),
    ),
    (
        "custom python",
        add_step({"type": "roboflow_core/custom_python@v1", "name": "extra"}),
        ("step 'extra'", "property 'type'", "is refused: it runs arbitrary Python code"),
    ),
    (
        "file sink",
        add_step({"type": "roboflow_core/local_file_sink@v1", "name": "extra"}),
        ("step 'extra'", "property 'type'", "is refused: it writes to the worker's local file system"),
    ),
    (
        "secrets",
        add_step({"type": "roboflow_core/environment_secrets_store@v1", "name": "extra"}),
        ("step 'extra'", "property 'type'", "is refused: it reads secrets"),
    ),
    (
        "dynamic blocks",
        changed(lambda d: d.update(dynamic_blocks_definitions=[])),
        ("dynamic blocks are refused", "custom Python"),
    ),
    ("duplicate step names", edit_step("boxes", name="detector"), ("step name 'detector'", "used twice")),
    (
        "missing required property",
        changed(lambda d: step(d, "crop").pop("predictions")),
        ("step 'crop'", "property 'predictions' is required"),
    ),
    ("unknown property", edit_step("boxes", colour="red"), ("step 'boxes'", "unknown property 'colour'")),
    (
        "property given twice",
        edit_step("detector", images="$inputs.image"),
        ("step 'detector'", "property 'image' is given twice"),
    ),
    (
        "unknown input selector",
        edit_step("detector", image="$inputs.picture"),
        ("step 'detector'", "property 'image'", "$inputs.picture refers to an input that does not exist"),
    ),
    (
        "unknown step selector",
        edit_step("boxes", predictions="$steps.nope.predictions"),
        (
            "step 'boxes'",
            "property 'predictions'",
            "$steps.nope.predictions refers to a step that does not exist",
        ),
    ),
    (
        "missing step output",
        edit_step("ocr", image="$steps.crop.crop"),
        ("step 'ocr'", "property 'image'", "step 'crop' has no output 'crop'"),
    ),
    (
        "output to missing step output",
        changed(lambda d: d["outputs"][0].update(selector="$steps.detector.boxes")),
        ("output 'predictions'", "property 'selector'", "step 'detector' has no output 'boxes'"),
    ),
    (
        "kind mismatch: image for detections",
        edit_step("crop", predictions="$steps.boxes.image"),
        (
            "step 'crop'",
            "property 'predictions'",
            "expects object_detection_prediction, got image from $steps.boxes.image",
        ),
    ),
    (
        "kind mismatch: detections for image",
        edit_step("ocr", image="$steps.detector.predictions"),
        ("step 'ocr'", "property 'image'", "expects image, got object_detection_prediction"),
    ),
    (
        "kind mismatch: parameter for image",
        edit_step("detector", image="$inputs.confidence"),
        ("step 'detector'", "property 'image'", "expects image, got parameter from $inputs.confidence"),
    ),
    (
        "literal image",
        edit_step("detector", image="photo.jpg"),
        ("step 'detector'", "property 'image'", "must be a selector"),
    ),
    (
        "malformed selector",
        edit_step("boxes", predictions="$steps.detector"),
        ("step 'boxes'", "property 'predictions'", "malformed selector '$steps.detector'"),
    ),
    ("cycle", changed(_cycle), ("steps form a cycle: 'a' -> 'b' -> 'a'", "step 'a' property 'image'")),
    (
        "wrong model task for detection",
        edit_step("detector", model_id="sluice/text-recognizer"),
        (
            "step 'detector'",
            "property 'model_id'",
            "has task ocr-recognition; this block runs object-detection",
        ),
    ),
    (
        "wrong model task for OCR",
        edit_step("ocr", model_id="sluice/text-detector"),
        (
            "step 'ocr'",
            "property 'model_id'",
            "has task ocr-detection; this block runs ocr-recognition models",
        ),
    ),
    (
        "wrong model task from a parameter",
        changed(
            lambda d: (
                d["inputs"].append(
                    {"type": "WorkflowParameter", "name": "m", "default_value": "sluice/orientation"}
                ),
                step(d, "detector").update(model_id="$inputs.m"),
            )
        ),
        ("step 'detector'", "property 'model_id'", "default of $inputs.m", "has task classification"),
    ),
    (
        "unknown model",
        edit_step("detector", model_id="acme/nothing"),
        ("step 'detector'", "property 'model_id'", "unknown model 'acme/nothing'"),
    ),
    (
        "bad confidence value",
        edit_step("detector", confidence=1.5),
        ("step 'detector'", "property 'confidence'", "must be a number between 0 and 1, got 1.5"),
    ),
    (
        "confidence not a number",
        edit_step("detector", confidence="high"),
        ("step 'detector'", "property 'confidence'", "must be a number"),
    ),
    (
        "bad choice",
        edit_step("labels", text="Colour"),
        ("step 'labels'", "property 'text'", "must be one of Class"),
    ),
    (
        "wildcard in a step property",
        edit_step("labels", labels="$steps.ocr.*"),
        (
            "step 'labels'",
            "property 'labels'",
            "wildcard selector $steps.ocr.* is allowed only in workflow outputs",
        ),
    ),
    (
        "wildcard output of a missing step",
        add_output("all", "$steps.nope.*"),
        ("output 'all'", "property 'selector'", "$steps.nope.* refers to a step that does not exist"),
    ),
    (
        "duplicate output names",
        add_output("texts", "$steps.ocr.result"),
        ("output name 'texts'", "used twice"),
    ),
    (
        "unknown output type",
        changed(lambda d: d["outputs"][0].update(type="Sink")),
        ("outputs[0] 'predictions'", "unknown output type 'Sink'"),
    ),
    (
        "per-crop value mixed with per-image value",
        edit_step("boxes", image="$steps.crop.crops"),
        ("step 'boxes'", "property 'predictions'", "one value per input image", "property 'image'"),
    ),
    (
        "labels that are not per crop",
        changed(
            lambda d: (
                d["steps"].append(PER_IMAGE_LIST),
                step(d, "labels").update(labels="$steps.names.output"),
            )
        ),
        ("step 'labels'", "property 'labels'", "expects one list entry per child of a fan-out step"),
    ),
    (
        "unsupported query operation",
        add_step(
            {
                "type": "roboflow_core/detections_filter@v1",
                "name": "only",
                "predictions": "$steps.detector.predictions",
                "operations": [{"type": "DetectionsMagic"}],
            }
        ),
        ("step 'only'", "property 'operations'", "operation 'DetectionsMagic' is not supported"),
    ),
    (
        "step output inside operations_parameters",
        add_step(
            {
                "type": "sluice/detections_filter@v1",
                "name": "only",
                "predictions": "$steps.detector.predictions",
                "operations_parameters": {"x": "$steps.detector.predictions"},
            }
        ),
        ("step 'only'", "property 'operations_parameters'", "only workflow parameters may be used here"),
    ),
    ("no steps", changed(lambda d: d.update(steps=[])), ("workflow has no steps",)),
    ("no outputs", changed(lambda d: d.update(outputs=[])), ("workflow has no outputs",)),
]


@pytest.mark.parametrize(("definition", "fragments"), [(d, f) for _, d, f in MALFORMED],
                         ids=[name for name, _, _ in MALFORMED])  # fmt: skip
def test_malformed_workflows_are_refused(definition: Any, fragments: tuple[str, ...]) -> None:
    with pytest.raises(InvalidArgument) as raised:
        compile_workflow(definition)
    for fragment in fragments:
        assert fragment in raised.value.message


def test_the_examples_compile() -> None:
    workflow = compile_workflow(reading())
    assert workflow.output_names == ("predictions", "texts", "annotated")
    assert workflow.image_outputs == ("annotated",)
    assert workflow.image_input_name == "image"
    assert workflow.step_names[:2] == ("detector", "crop")
    compile_workflow(json.loads((EXAMPLES / "text-detection.json").read_text()))


def test_compiled_workflows_are_cached_by_content_threads_and_catalog() -> None:
    workflow = compile_workflow(reading())
    assert compile_workflow(json.dumps(reading(), sort_keys=True, indent=4)) is workflow
    assert compile_workflow(reading(), intra_op_threads=1) is not workflow
    from sluice.models import MappingCatalog

    catalog = MappingCatalog({})
    other = compile_workflow(reading(), models=catalog)
    assert other is not workflow
    assert compile_workflow(reading(), models=catalog) is other


def test_models_are_looked_up_in_the_catalog_given() -> None:
    from sluice.models import MappingCatalog, get_model

    mine = {"acme/text": get_model("sluice/text-detector")}
    definition = changed(lambda d: step(d, "detector").update(model_id="acme/text"))
    with pytest.raises(InvalidArgument, match="unknown model 'acme/text'"):
        compile_workflow(definition)
    compile_workflow(definition, models=MappingCatalog(mine))


def test_an_image_input_may_have_another_name() -> None:
    text = json.dumps(reading()).replace('"$inputs.image"', '"$inputs.picture"')
    definition = json.loads(text)
    definition["inputs"][0]["name"] = "picture"
    assert compile_workflow(definition).image_input_name == "picture"


def test_roboflow_input_and_block_names_compile() -> None:
    definition = changed(lambda d: d["inputs"][0].update(type="InferenceImage"))
    renames = {
        "detector": "roboflow_core/roboflow_object_detection_model@v2",
        "crop": "roboflow_core/dynamic_crop@v1",
        "ocr": "roboflow_core/ocr_model@v1",
        "boxes": "roboflow_core/bounding_box_visualization@v1",
        "labels": "roboflow_core/label_visualization@v1",
    }
    for name, block_type in renames.items():
        entry = step(definition, name)
        entry["type"] = block_type
        if "image" in entry and name != "labels" and name != "boxes":
            entry["images"] = entry.pop("image")
    step(definition, "ocr").pop("model_id")
    step(definition, "detector")["disable_active_learning"] = True
    assert compile_workflow(definition).output_names == ("predictions", "texts", "annotated")


# --- Manifests and plugins ---------------------------------------------------------------


class _Echo:
    def run(self, batch: list[dict[str, Any]], elements: Any) -> list[dict[str, Any]]:
        return [{"image": item["image"]} for item in batch]


def _echo_manifest(block_type: str = "acme/echo@v1") -> BlockManifest:
    return BlockManifest(
        type=block_type,
        description="Outputs its input image.",
        properties={"image": Property((Kind.IMAGE,), required=True, selector_only=True)},
        outputs={"image": Kind.IMAGE},
        build=_Echo,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "echo"}, "must look like 'namespace/name@v1'"),
        ({"outputs": {}}, "outputs must map names to Kind"),
        ({"aliases": {"images": "picture"}}, "alias 'images' -> 'picture' is not a property"),
        ({"init_parameters": ("gpu",)}, "init_parameters ['gpu'] are not in BlockContext"),
        ({"properties": {"Image": Property((Kind.IMAGE,))}}, "property 'Image': names are lower-case"),
        (
            {"properties": {"k": Property((Kind.PARAMETER,), required=True, default=3)}},
            "required property has no default",
        ),
        ({"output_dimensionality_offset": 2}, "output_dimensionality_offset must be 0 or 1"),
    ],
)
def test_manifests_are_validated(change: dict[str, Any], message: str) -> None:
    fields = {
        "type": "acme/echo@v1",
        "description": "",
        "properties": {"image": Property((Kind.IMAGE,), required=True, selector_only=True)},
        "outputs": {"image": Kind.IMAGE},
        "build": _Echo,
        **change,
    }
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        BlockManifest(**fields)


class _EntryPoint:
    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self._value = value

    def load(self) -> Any:
        if isinstance(self._value, Exception):
            raise self._value
        return self._value


def test_plugin_blocks_are_found_through_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def entry_points(group: str) -> list[_EntryPoint]:
        calls.append(group)
        return [
            _EntryPoint("echo", lambda: [_echo_manifest()]),
            _EntryPoint("broken", ImportError("no such module")),
            _EntryPoint("clash", [_echo_manifest("sluice/dynamic_crop@v1")]),
        ]

    monkeypatch.setattr(plugins.metadata, "entry_points", entry_points)
    registry = BlockRegistry([])
    assert calls == [], "nothing is looked up before the first compile"
    assert registry.find("acme/echo@v1") is not None
    assert registry.find("acme/echo@v1") is not None
    assert calls == ["sluice.workflow_blocks"], "plugins load once"

    REGISTRY.reload_plugins()
    try:
        definition = add_step({"type": "acme/echo@v1", "name": "echo", "image": "$inputs.image"})
        definition["outputs"].append({"type": "JsonField", "name": "echoed", "selector": "$steps.echo.image"})
        workflow = compile_workflow(definition)
        assert "echoed" in workflow.image_outputs
        assert REGISTRY.find("sluice/dynamic_crop@v1") is not None
    finally:
        monkeypatch.undo()
        REGISTRY.reload_plugins()
    with pytest.raises(InvalidArgument, match="step 'echo' type 'acme/echo@v1'"):
        compile_workflow(add_step({"type": "acme/echo@v1", "name": "echo", "image": "$inputs.image"}))


def test_a_block_that_cannot_run_here_is_refused_at_compile_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from sluice.workflow.blocks.byte_tracker import v1 as byte_tracker

    monkeypatch.setattr(byte_tracker, "backend_name", lambda: None)
    definition = add_step(
        {"type": "roboflow_core/byte_tracker@v2", "name": "tracker", "image": "$inputs.image",
         "detections": "$steps.detector.predictions", "lost_track_buffer": 7}
    )  # fmt: skip
    with pytest.raises(InvalidArgument) as raised:
        compile_workflow(definition)
    assert "step 'tracker': property 'type'" in raised.value.message
    assert "needs supervision < 0.30 or the `trackers` package" in raised.value.message
