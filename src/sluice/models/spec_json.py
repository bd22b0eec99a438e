"""A model spec as JSON: what the registry stores, what `sluice models register` sends.

The JSON is one object whose keys are `ModelSpec`'s fields (the file path excepted: the file
travels beside the spec), with `dbnet` and `ctc` as nested objects::

    {"spec_version": 1, "model_id": "acme/cars", "task": "object-detection",
     "output_layout": "yolov8", "class_names": ["car", "person"], "input_size": [640, 640],
     "resize_mode": "letterbox", "scale": 0.00392156862745098, "mean": [0, 0, 0],
     "std": [1, 1, 1], "channel_order": "rgb", "default_confidence": 0.4, ...}

Only `task` is required (and `class_names` where the task needs them). A missing field takes the
default of the output layout (itself defaulting to the task's first layout): a bare
`{"task": "ocr-recognition"}` is set up as PP-OCR's recogniser is. Unknown keys, wrong types and
bad values are refused with `InvalidSpec` naming the field.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sluice.models.spec import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LAYOUTS_BY_TASK,
    TASKS,
    CTCParams,
    DBNetParams,
    InvalidSpec,
    ModelSpec,
)

SPEC_VERSION = 1

LAYOUT_DEFAULTS: dict[str, dict[str, Any]] = {
    "yolov8": {
        "input_size": (640, 640),
        "resize_mode": "letterbox",
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "channel_order": "rgb",
    },
    "dbnet": {
        "class_names": ("text",),
        "input_size": None,
        "max_side": 960,
        "stride": 32,
        "resize_mode": "resize",
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "channel_order": "bgr",
        "default_confidence": 0.5,
        "max_batch": 4,
    },
    "yolov8-cls": {
        "input_size": (224, 224),
        "resize_mode": "center-crop",
        "crop_fraction": 1.0,
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "channel_order": "rgb",
    },
    "orientation": {
        "input_size": (224, 224),
        "resize_mode": "center-crop",
        "crop_fraction": 0.875,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "channel_order": "bgr",
    },
    "ctc": {
        "input_size": (320, 48),
        "max_side": 3200,
        "resize_mode": "fixed-height",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "channel_order": "bgr",
        "max_batch": 6,
    },
}
"""Per output layout, the fields that differ from `ModelSpec`'s own defaults."""


def _bad(name: str, problem: str) -> InvalidSpec:
    return InvalidSpec(f"model spec: field {name!r} {problem}")


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(name, "must be a non-empty string")
    return value


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, f"must be an integer, not {value!r}")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(name, f"must be a number, not {value!r}")
    return float(value)


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(name, f"must be true or false, not {value!r}")
    return value


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _bad(name, "must be a list of non-empty strings")
    return tuple(value)


def _triple(value: Any, name: str) -> tuple[float, float, float]:
    if not isinstance(value, list) or len(value) != 3:
        raise _bad(name, "must be a list of three numbers (one per channel)")
    first, second, third = (_number(v, name) for v in value)
    return first, second, third


def _size(value: Any, name: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise _bad(name, f"must be [width, height] of positive integers or null, not {value!r}")
    return value[0], value[1]


def _nested(cls: type, converters: Mapping[str, Callable[[Any, str], Any]]) -> Callable[[Any, str], Any]:
    def convert(value: Any, name: str) -> Any:
        if not isinstance(value, dict):
            raise _bad(name, "must be an object")
        unknown = sorted(set(value) - set(converters))
        if unknown:
            raise _bad(f"{name}.{unknown[0]}", f"is unknown; known fields: {', '.join(converters)}")
        return cls(**{k: converters[k](v, f"{name}.{k}") for k, v in value.items()})

    return convert


def _charset(value: Any, name: str) -> tuple[str, ...] | None:
    return None if value is None else _strings(value, name)


_FIELDS: dict[str, Callable[[Any, str], Any]] = {
    "model_id": _string,
    "task": _string,
    "output_layout": _string,
    "class_names": _strings,
    "input_size": _size,
    "max_side": _integer,
    "stride": _integer,
    "resize_mode": _string,
    "pad_value": _integer,
    "crop_fraction": _number,
    "scale": _number,
    "mean": _triple,
    "std": _triple,
    "channel_order": _string,
    "default_confidence": _number,
    "default_iou": _number,
    "max_batch": _integer,
    "dbnet": _nested(
        DBNetParams,
        {
            "threshold": _number,
            "box_threshold": _number,
            "unclip_ratio": _number,
            "max_candidates": _integer,
            "min_size": _number,
            "dilate": _flag,
        },
    ),
    "ctc": _nested(CTCParams, {"charset": _charset, "metadata_key": _string}),
}


def spec_from_dict(
    data: Mapping[str, Any], path: Path | str | None = None, model_id: str | None = None
) -> ModelSpec:
    """A validated spec from its JSON object; `model_id` fills (or must match) the object's."""
    if not isinstance(data, Mapping):
        raise InvalidSpec("model spec must be a JSON object")
    version = data.get("spec_version", SPEC_VERSION)
    if version != SPEC_VERSION:
        raise _bad("spec_version", f"must be {SPEC_VERSION}, not {version!r}")
    unknown = sorted(set(data) - set(_FIELDS) - {"spec_version"})
    if unknown:
        raise _bad(unknown[0], f"is unknown; known fields: {', '.join(_FIELDS)}")
    values = {name: _FIELDS[name](value, name) for name, value in data.items() if name != "spec_version"}
    if model_id is not None and values.setdefault("model_id", model_id) != model_id:
        raise _bad("model_id", f"is {values['model_id']!r} but the model is registered as {model_id!r}")
    if "model_id" not in values:
        raise _bad("model_id", "is missing")
    task = values.get("task")
    if task is None:
        raise _bad("task", f"is missing: use one of {', '.join(TASKS)}")
    if task not in LAYOUTS_BY_TASK:
        raise _bad("task", f"must be one of {', '.join(TASKS)}, not {task!r}")
    layout = values.setdefault("output_layout", LAYOUTS_BY_TASK[task][0])
    defaults = LAYOUT_DEFAULTS.get(layout, {})
    return ModelSpec(path=Path(path or "model.onnx"), **{**defaults, **values})


def spec_from_json(
    text: str | bytes, path: Path | str | None = None, model_id: str | None = None
) -> ModelSpec:
    """Parse and validate a spec's JSON text (see `spec_from_dict`)."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidSpec(f"model spec is not valid JSON: {error}") from None
    return spec_from_dict(data, path, model_id)


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """Every field of `spec` as JSON values (`dbnet` and `ctc` only for their layouts; no path)."""
    out: dict[str, Any] = {"spec_version": SPEC_VERSION}
    for item in dataclasses.fields(spec):
        if item.name == "path":
            continue
        if item.name == "dbnet" and spec.output_layout != "dbnet":
            continue
        if item.name == "ctc" and spec.output_layout != "ctc":
            continue
        value = getattr(spec, item.name)
        is_params = isinstance(value, DBNetParams | CTCParams)
        out[item.name] = dataclasses.asdict(value) if is_params else value
    return json.loads(json.dumps(out))  # tuples -> lists


def spec_to_json(spec: ModelSpec, indent: int | None = None) -> str:
    """`spec` as JSON text that `spec_from_json` reads back to an equal spec (path aside)."""
    return json.dumps(spec_to_dict(spec), indent=indent, ensure_ascii=False)
