"""Model specs: JSON in and out, validation naming the field, model ids, the file-against-spec
check, and the model ids a workflow names."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sluice.errors import InvalidArgument
from sluice.models import (
    BUILT_IN_IDS,
    TEXT_RECOGNIZER,
    InvalidSpec,
    ModelSpec,
    get_model,
    referenced_model_ids,
    spec_from_dict,
    spec_from_json,
    spec_to_dict,
    spec_to_json,
    validate_model_id,
)
from sluice.models.model_checks import check_model_fits
from sluice.models.model_info import ModelInfo, TensorInfo, inspect_model
from tests.model_fixtures import constant_model

DETECTION = {"model_id": "acme/cars", "task": "object-detection", "class_names": ["car", "person"]}


@pytest.mark.parametrize("model_id", sorted(BUILT_IN_IDS))
def test_built_in_specs_survive_json(model_id: str) -> None:
    spec = get_model(model_id)
    text = spec_to_json(spec)
    assert "path" not in json.loads(text)
    assert spec_from_json(text, spec.path) == spec


def test_a_detection_spec_takes_yolov8_defaults() -> None:
    spec = spec_from_dict(DETECTION)
    assert spec.output_layout == "yolov8" and spec.resize_mode == "letterbox"
    assert spec.input_size == (640, 640) and spec.channel_order == "rgb"
    assert spec.class_names == ("car", "person") and spec.path == Path("model.onnx")
    data = spec_to_dict(spec)
    assert data["spec_version"] == 1 and "dbnet" not in data and "ctc" not in data


def test_a_bare_recognition_spec_is_set_up_as_pp_ocr() -> None:
    bare = spec_from_json('{"task": "ocr-recognition"}', model_id="acme/rec")
    builtin = get_model(TEXT_RECOGNIZER)
    assert replace(bare, model_id=builtin.model_id, path=builtin.path) == builtin


def test_given_fields_override_the_layout_defaults() -> None:
    spec = spec_from_dict(
        {
            **DETECTION,
            "input_size": [320, 256],
            "mean": [0.5, 0.5, 0.5],
            "std": [0.25, 0.25, 0.25],
            "channel_order": "bgr",
            "max_batch": 2,
        }
    )
    assert spec.input_size == (320, 256) and spec.std == (0.25, 0.25, 0.25) and spec.max_batch == 2


def test_the_registered_id_fills_or_must_match() -> None:
    without_id = {k: v for k, v in DETECTION.items() if k != "model_id"}
    assert spec_from_dict(without_id, model_id="acme/x").model_id == "acme/x"
    with pytest.raises(
        InvalidSpec, match="'model_id' is 'acme/cars' but the model is registered as 'acme/x'"
    ):
        spec_from_dict(DETECTION, model_id="acme/x")
    with pytest.raises(InvalidSpec, match="'model_id' is missing"):
        spec_from_dict(without_id)


BAD_SPECS: list[tuple[dict[str, Any], str]] = [
    ({"task": "segmentation"}, "'task' must be one of object-detection, classification"),
    ({"task": None}, "'task' must be a non-empty string"),
    ({"class_names": []}, "'class_names' is empty: a object-detection model needs its class names"),
    ({"class_names": ["a", ""]}, "'class_names' must be a list of non-empty strings"),
    ({"class_names": "car,person"}, "'class_names' must be a list of non-empty strings"),
    ({"input_size": [0, 640]}, "'input_size' must be \\[width, height\\] of positive integers"),
    ({"input_size": "640x640"}, "'input_size' must be \\[width, height\\]"),
    (
        {"output_layout": "yolov5"},
        "'output_layout' 'yolov5' does not fit task 'object-detection': use yolov8",
    ),
    ({"output_layout": "ctc"}, "'output_layout' 'ctc' does not fit task 'object-detection'"),
    ({"resize_mode": "stretch"}, "'resize_mode' 'stretch' does not fit output layout 'yolov8'"),
    ({"resize_mode": "center-crop"}, "'resize_mode' 'center-crop' does not fit output layout 'yolov8'"),
    ({"colour": "rgb"}, "field 'colour' is unknown; known fields: model_id, task"),
    ({"dbnet": {"treshold": 0.3}}, "field 'dbnet.treshold' is unknown"),
    ({"mean": [0.5, 0.5]}, "'mean' must be a list of three numbers"),
    ({"std": [1, 0, 1]}, "'std' has a zero"),
    ({"max_batch": True}, "'max_batch' must be an integer"),
    ({"max_batch": 0}, "'max_batch' must be positive"),
    ({"scale": "1/255"}, "'scale' must be a number"),
    ({"default_confidence": 1.5}, "'default_confidence' must be in \\[0, 1\\]"),
    ({"pad_value": 300}, "'pad_value' must be a pixel value"),
    ({"channel_order": "rbg"}, "'channel_order' must be rgb or bgr"),
    ({"spec_version": 2}, "'spec_version' must be 1"),
    (
        {"task": "classification", "output_layout": "orientation", "class_names": ["up", "down"]},
        "'class_names' of an orientation model must be clockwise degrees",
    ),
    ({"task": "classification", "class_names": None}, "'class_names' must be a list"),
    ({"task": "classification", "class_names": []}, "'class_names' is empty: a classification model"),
    (
        {"task": "classification", "class_names": ["a"], "input_size": None},
        "'input_size' is needed by resize_mode 'center-crop'",
    ),
    ({"task": "ocr-recognition", "class_names": ["a"]}, "'class_names' must be empty for ocr-recognition"),
    ({"task": "ocr-recognition", "class_names": [], "ctc": {"charset": []}}, "'ctc.charset' must be null"),
    ({"task": "ocr-recognition", "class_names": [], "max_side": 100}, "'max_side' .* at least input_size"),
    ({"task": "ocr-detection", "class_names": ["a", "b"]}, "'class_names' must hold exactly one name"),
]


@pytest.mark.parametrize(("change", "message"), BAD_SPECS)
def test_bad_specs_are_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message) as caught:
        spec_from_dict({**DETECTION, **change})
    assert isinstance(caught.value, InvalidArgument) and isinstance(caught.value, ValueError)


def test_spec_text_that_is_not_a_json_object_is_refused() -> None:
    with pytest.raises(InvalidSpec, match="not valid JSON"):
        spec_from_json("{task: detection}")
    with pytest.raises(InvalidSpec, match="must be a JSON object"):
        spec_from_json("[1, 2]")


def test_direct_construction_is_validated_too(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="class_names"):
        ModelSpec(model_id="x", path=tmp_path / "x.onnx", class_names=())
    with pytest.raises(InvalidSpec, match="'task' must be one of"):
        ModelSpec(model_id="x", path=tmp_path / "x.onnx", class_names=("a",), task="tracking")  # type: ignore[arg-type]


@pytest.mark.parametrize("model_id", ["cars", "acme/cars-v2.1", "a_b", "3", "x" * 128, "a.b/c_d-e"])
def test_good_model_ids(model_id: str) -> None:
    assert validate_model_id(model_id) == model_id


@pytest.mark.parametrize(
    "model_id", ["", "Cars", "a/b/c", "../x", "a/..", ".hidden", "a/.x", "a b", "-x", "x" * 129, "a/", "/a"]
)
def test_bad_model_ids_are_refused_with_the_rule(model_id: str) -> None:
    with pytest.raises(InvalidArgument, match="lower case letters, digits"):
        validate_model_id(model_id)


def _info(input_shape: tuple[Any, ...], output_shape: tuple[Any, ...], **metadata: str) -> ModelInfo:
    return ModelInfo(
        (TensorInfo("images", input_shape, "tensor(float)"),),
        (TensorInfo("output0", output_shape, "tensor(float)"),),
        metadata,
    )


CLS = {"model_id": "acme/cls", "task": "classification", "class_names": ["a", "b", "c"]}
REC = {"model_id": "acme/rec", "task": "ocr-recognition"}

FITS: list[tuple[dict[str, Any], ModelInfo]] = [
    (DETECTION, _info(("N", 3, 640, 640), ("N", 6, 8400))),
    (DETECTION, _info(("N", 3, 640, 640), ("N", 8400, 6))),
    (DETECTION, _info((None, 3, "h", "w"), (None, "c", "a"))),
    ({**DETECTION, "input_size": None}, _info(("N", 3, "h", "w"), ("N", 6, "a"))),
    (CLS, _info(("N", 3, 224, 224), ("N", 3))),
    (CLS, _info(("N", 3, 224, 224), ("N", 3, 1, 1))),
    ({**REC, "ctc": {"charset": ["x", "y"]}}, _info(("N", 3, 48, "w"), ("N", "t", 4))),
    (REC, _info(("N", 3, 48, "w"), ("N", "t", 5), character="x\ny\nz")),
    (REC, _info(("N", 3, 48, "w"), ("N", "t", 4), character="x\ny\nz\n")),
]


@pytest.mark.parametrize(("spec", "info"), FITS)
def test_files_that_fit_their_spec(spec: dict[str, Any], info: ModelInfo) -> None:
    assert check_model_fits(spec_from_dict(spec), info) == spec_from_dict(spec)


MISFITS: list[tuple[dict[str, Any], ModelInfo, str]] = [
    (
        DETECTION,
        _info(("N", 3, 640, 640), ("N", 84, 8400)),
        "yolov8 layout .* for 2 classes \\(expected 6 rows\\)",
    ),
    (DETECTION, _info(("N", 3, 640, 640), ("N", 6)), "not the yolov8 layout"),
    (DETECTION, _info(("N", 3, 320, 320), ("N", 6, 2100)), "does not take the spec's 640x640 images"),
    (DETECTION, _info(("N", 1, 640, 640), ("N", 6, 8400)), "has 1 channels; Sluice feeds 3"),
    (DETECTION, _info(("N", 640, 640), ("N", 6, 8400)), "not an image batch"),
    (
        {**DETECTION, "input_size": None},
        _info(("N", 3, 640, 640), ("N", 6, 8400)),
        "set input_size to \\[640",
    ),
    (CLS, _info(("N", 3, 224, 224), ("N", 1000)), "has 1000 classes, the spec names 3"),
    (CLS, _info(("N", 3, 224, 224), ("N", 3, 7, 7)), "not a classification output"),
    (REC, _info(("N", 3, 32, "w"), ("N", "t", 5), character="x\ny\nz"), "is 32 high, the spec says 48"),
    (REC, _info(("N", 3, 48, "w"), ("N", "t", 9), character="x\ny\nz"), "charset has 3 characters but .* 9"),
    (REC, _info(("N", 3, 48, "w"), ("N", "t", 5)), "no 'character' metadata"),
    (REC, _info(("N", 3, 48, "w"), ("N", 5)), "not a CTC output"),
]


@pytest.mark.parametrize(("spec", "info", "message"), MISFITS)
def test_files_that_do_not_fit_are_refused_saying_why(
    spec: dict[str, Any], info: ModelInfo, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=f"does not fit its spec: .*{message}"):
        check_model_fits(spec_from_dict(spec), info)


def test_a_fixed_batch_size_caps_max_batch(tmp_path: Path) -> None:
    path = constant_model(tmp_path / "b1.onnx", np.zeros((1, 3), np.float32), (1, 3, 224, 224))
    info = inspect_model(path)
    assert info.inputs[0].shape == (1, 3, 224, 224)
    assert check_model_fits(spec_from_dict(CLS), info).max_batch == 1


def test_half_precision_inputs_are_refused() -> None:
    info = ModelInfo(
        (TensorInfo("images", ("N", 3, 640, 640), "tensor(float16)"),),
        (TensorInfo("output0", ("N", 6, 8400), "tensor(float16)"),),
        {},
    )
    with pytest.raises(InvalidArgument, match="is tensor\\(float16\\); Sluice feeds float32"):
        check_model_fits(spec_from_dict(DETECTION), info)


def _workflow(*steps: Any, inputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"version": "1.0", "inputs": inputs or [], "steps": list(steps), "outputs": []}


def test_referenced_model_ids_reads_literals_and_input_defaults() -> None:
    definition = _workflow(
        {"type": "sluice/object_detection_model@v1", "name": "a", "model_id": "acme/cars"},
        {"type": "sluice/classification_model@v1", "name": "b", "model_id": "$inputs.classifier"},
        {"type": "sluice/ocr_model@v1", "name": "c", "model_id": "sluice/text-recognizer"},
        {"type": "x", "name": "d", "model_id": "$steps.a.predictions"},
        {"type": "x", "name": "e", "model_id": 3},
        {"type": "x", "name": "f"},
        "not a step",
        inputs=[
            {"type": "WorkflowImage", "name": "image"},
            {"type": "WorkflowParameter", "name": "classifier", "default_value": "acme/cls"},
        ],
    )
    assert referenced_model_ids(definition) == {"acme/cars", "acme/cls", "sluice/text-recognizer"}
    chosen = referenced_model_ids(definition, {"classifier": "acme/other"})
    assert chosen == {"acme/cars", "acme/other", "sluice/text-recognizer"}


def test_referenced_model_ids_of_odd_definitions() -> None:
    assert referenced_model_ids({}) == set()
    assert referenced_model_ids({"steps": None, "inputs": "x"}) == set()
    no_default = _workflow(
        {"type": "x", "name": "a", "model_id": "$inputs.m"},
        inputs=[{"type": "WorkflowParameter", "name": "m"}],
    )
    assert referenced_model_ids(no_default) == set()
