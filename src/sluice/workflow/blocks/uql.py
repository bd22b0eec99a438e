"""A subset of Roboflow's query language (UQL) for detections, so their definitions run as is.

Supported: operations `DetectionsFilter`, `DetectionsOffset`, `DetectionsShift`,
`SortDetections`, `DetectionsSelection`, `SequenceLength`, `DetectionsPropertyExtract` and
`ClassificationPropertyExtract`; statements `StatementGroup` (and/or) and `BinaryStatement`
over `ExtractDetectionProperty` of each detection (operand "_") against a static value or a
named operand from `operations_parameters`. Anything else is refused when the workflow is
compiled, naming what is not supported.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import supervision as sv

from sluice.workflow.detections import IMAGE_SHAPE, class_names, confidences, detection_ids, select

DETECTION_PROPERTIES: dict[str, Callable[[sv.Detections], np.ndarray]] = {
    "confidence": confidences,
    "class_name": class_names,
    "class_id": lambda d: d.class_id if d.class_id is not None else np.zeros(len(d), np.int64),
    "x_min": lambda d: d.xyxy[:, 0],
    "y_min": lambda d: d.xyxy[:, 1],
    "x_max": lambda d: d.xyxy[:, 2],
    "y_max": lambda d: d.xyxy[:, 3],
    "size": lambda d: d.box_area,
    "center_x": lambda d: (d.xyxy[:, 0] + d.xyxy[:, 2]) / 2,
    "center_y": lambda d: (d.xyxy[:, 1] + d.xyxy[:, 3]) / 2,
    "tracker_id": lambda d: d.tracker_id if d.tracker_id is not None else np.full(len(d), -1),
    "detection_id": lambda d: np.asarray(detection_ids(d), dtype=object),
}

_NUMBER = {
    "(Number) >": operator.gt,
    "(Number) >=": operator.ge,
    "(Number) <": operator.lt,
    "(Number) <=": operator.le,
    "(Number) ==": operator.eq,
    "(Number) !=": operator.ne,
    "==": operator.eq,
    "!=": operator.ne,
}
_STRING = {
    "(String) startsWith": lambda a, b: a.startswith(b),
    "(String) endsWith": lambda a, b: a.endswith(b),
    "(String) contains": lambda a, b: b in a,
}
IN_COMPARATORS = ("in (Sequence)", "in")
COMPARATORS = (*_NUMBER, *_STRING, *IN_COMPARATORS)
CLASSIFICATION_PROPERTIES = ("top_class", "top_class_confidence", "all_classes", "all_confidences")


class Unsupported(ValueError):
    """A UQL construct outside the supported subset."""


def _field(entry: Mapping[str, Any], name: str) -> Any:
    if name not in entry:
        raise Unsupported(f"{entry.get('type', 'operation')} needs {name!r}")
    return entry[name]


def _operand(operand: Any, detections: sv.Detections, params: Mapping[str, Any]) -> Any:
    if not isinstance(operand, dict):
        raise Unsupported(f"an operand must be an object, got {operand!r}")
    kind = operand.get("type")
    if kind == "StaticOperand":
        return operand.get("value")
    if kind != "DynamicOperand":
        raise Unsupported(f"operand type {kind!r} is not supported (StaticOperand, DynamicOperand)")
    name = operand.get("operand_name", "_")
    ops: list[Any] = operand.get("operations", operand.get("ops")) or []
    if name != "_":
        if name not in params:
            raise Unsupported(f"operand {name!r} is not in operations_parameters")
        if ops:
            raise Unsupported(f"operations on operand {name!r} are not supported")
        return params[name]
    if len(ops) != 1 or ops[0].get("type") != "ExtractDetectionProperty":
        raise Unsupported("the detections operand must have exactly one ExtractDetectionProperty operation")
    prop = _field(ops[0], "property_name")
    if prop not in DETECTION_PROPERTIES:
        raise Unsupported(f"detection property {prop!r} is not supported ({', '.join(DETECTION_PROPERTIES)})")
    return DETECTION_PROPERTIES[prop](detections)


def _compare(comparator: str, left: Any, right: Any, count: int) -> np.ndarray:
    if comparator in IN_COMPARATORS:
        return np.asarray(
            [item in right for item in np.broadcast_to(np.asarray(left, dtype=object), (count,))]
        )
    if comparator in _NUMBER:
        return np.broadcast_to(np.asarray(_NUMBER[comparator](left, right), dtype=bool), (count,))
    if comparator in _STRING:
        pairs = zip(np.broadcast_to(np.asarray(left, dtype=object), (count,)), np.broadcast_to(
            np.asarray(right, dtype=object), (count,)), strict=True)  # fmt: skip
        return np.asarray([bool(_STRING[comparator](str(a), str(b))) for a, b in pairs], dtype=bool)
    raise Unsupported(f"comparator {comparator!r} is not supported ({', '.join(COMPARATORS)})")


def statement_mask(statement: Any, detections: sv.Detections, params: Mapping[str, Any]) -> np.ndarray:
    """The detections [N] a UQL statement keeps."""
    if not isinstance(statement, dict):
        raise Unsupported(f"a statement must be an object, got {statement!r}")
    kind = statement.get("type")
    count = len(detections)
    if kind == "StatementGroup":
        masks = [statement_mask(s, detections, params) for s in _field(statement, "statements")]
        combine = np.logical_or if statement.get("operator", "or") == "or" else np.logical_and
        mask = masks[0] if masks else np.ones(count, bool)
        for other in masks[1:]:
            mask = combine(mask, other)
    elif kind == "BinaryStatement":
        left = _operand(_field(statement, "left_operand"), detections, params)
        right = _operand(_field(statement, "right_operand"), detections, params)
        comparator = _field(statement, "comparator")
        name = comparator.get("type") if isinstance(comparator, dict) else comparator
        mask = _compare(str(name), left, right, count)
    else:
        raise Unsupported(f"statement type {kind!r} is not supported (StatementGroup, BinaryStatement)")
    return ~mask if statement.get("negate", False) else np.asarray(mask, dtype=bool)


def _image_shape(detections: sv.Detections) -> tuple[int, int] | None:
    shape = detections.metadata.get(IMAGE_SHAPE)
    return (int(shape[0]), int(shape[1])) if shape is not None else None


def with_boxes(detections: sv.Detections, xyxy: np.ndarray) -> sv.Detections:
    """`detections` with new boxes, clipped to their image when its size is known."""
    shape = _image_shape(detections)
    if shape is not None:
        xyxy = np.stack(
            [xyxy[:, 0].clip(0, shape[1]), xyxy[:, 1].clip(0, shape[0]),
             xyxy[:, 2].clip(0, shape[1]), xyxy[:, 3].clip(0, shape[0])], axis=1)  # fmt: skip
    return dataclasses.replace(detections, xyxy=xyxy.astype(np.float32))


def offset(detections: sv.Detections, offset_x: float, offset_y: float) -> sv.Detections:
    """Boxes grown by `offset_x` in width and `offset_y` in height (half on each side)."""
    grow = np.array([-offset_x / 2, -offset_y / 2, offset_x / 2, offset_y / 2], dtype=np.float32)
    return with_boxes(detections, detections.xyxy + grow)


def _apply_detections_op(op: Mapping[str, Any], value: sv.Detections, params: Mapping[str, Any]) -> Any:
    kind = op["type"]
    if kind == "DetectionsFilter":
        return select(value, statement_mask(_field(op, "filter_operation"), value, params))
    if kind == "DetectionsOffset":
        return offset(value, float(_field(op, "offset_x")), float(_field(op, "offset_y")))
    if kind == "DetectionsShift":
        shift = np.array([op.get("shift_x", 0), op.get("shift_y", 0)] * 2, dtype=np.float32)
        return with_boxes(value, value.xyxy + shift)
    if kind == "SortDetections":
        keys = DETECTION_PROPERTIES[op.get("mode", "confidence")](value)
        order = np.argsort(keys, kind="stable")
        return select(value, order if op.get("ascending", True) else order[::-1])
    if kind == "DetectionsSelection":
        return _selection(value, op.get("mode", "top_confidence"))
    if kind == "DetectionsPropertyExtract":
        return DETECTION_PROPERTIES[_field(op, "property_name")](value).tolist()
    if kind == "SequenceLength":
        return len(value)
    raise Unsupported(f"operation {kind!r} cannot be applied to detections")


def _selection(value: sv.Detections, mode: str) -> sv.Detections:
    if len(value) == 0:
        return value
    pick = {
        "top_confidence": lambda: int(np.argmax(confidences(value))),
        "left_most": lambda: int(np.argmin(value.xyxy[:, 0])),
        "right_most": lambda: int(np.argmax(value.xyxy[:, 2])),
        "first": lambda: 0,
        "last": lambda: len(value) - 1,
    }.get(mode)
    if pick is None:
        raise Unsupported(f"DetectionsSelection mode {mode!r} is not supported")
    return select(value, np.array([pick()]))


def _classification_property(value: Mapping[str, Any], name: str) -> Any:
    predictions = value.get("predictions", [])
    if name == "top_class":
        return value.get("top")
    if name == "top_class_confidence":
        return value.get("confidence")
    if name == "all_classes":
        return [p["class"] for p in predictions]
    if name == "all_confidences":
        return [p["confidence"] for p in predictions]
    raise Unsupported(
        f"classification property {name!r} is not supported ({', '.join(CLASSIFICATION_PROPERTIES)})"
    )


def apply(operations: list[Any], value: Any, params: Mapping[str, Any]) -> Any:
    """Run a UQL operations chain on `value` (detections, a classification, or a list)."""
    for op in operations:
        kind = op.get("type") if isinstance(op, dict) else None
        if isinstance(value, sv.Detections):
            value = _apply_detections_op(op, value, params)
        elif kind == "ClassificationPropertyExtract" and isinstance(value, dict):
            value = _classification_property(value, _field(op, "property_name"))
        elif kind == "SequenceLength" and isinstance(value, list | tuple | str | dict):
            value = len(value)
        else:
            raise Unsupported(f"operation {kind!r} cannot be applied to {type(value).__name__}")
    return value


SUPPORTED_OPERATIONS = (
    "DetectionsFilter", "DetectionsOffset", "DetectionsShift", "SortDetections", "DetectionsSelection",
    "DetectionsPropertyExtract", "SequenceLength", "ClassificationPropertyExtract",
)  # fmt: skip


def check_operations(value: Any) -> None:
    """Compile-time check of an operations list: known operation types and their fields."""
    if not isinstance(value, list):
        raise ValueError(f"must be a list of operations, got {value!r}")
    for op in value:
        kind = op.get("type") if isinstance(op, dict) else None
        if kind not in SUPPORTED_OPERATIONS:
            raise ValueError(
                f"operation {kind!r} is not supported (supported: {', '.join(SUPPORTED_OPERATIONS)})"
            )
        if kind == "DetectionsFilter":
            _check_statement(_field(op, "filter_operation"))
        if kind in ("DetectionsPropertyExtract", "SortDetections"):
            prop = op.get("property_name", op.get("mode", "confidence"))
            if prop not in DETECTION_PROPERTIES:
                raise ValueError(f"{kind}: detection property {prop!r} is not supported")


def _check_statement(statement: Any) -> None:
    """Refuse what `statement_mask` could not evaluate, by trying it on no detections."""
    empty = sv.Detections.empty()
    try:
        statement_mask(statement, empty, _AnyParams())
    except Unsupported:
        raise
    except Exception as error:
        raise ValueError(f"malformed statement: {error}") from None


class _AnyParams(dict[str, Any]):
    """Operand parameters for a compile-time check, where every name is present."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> Any:
        return []
