"""Turning step outputs into JSON values (Roboflow's shape for detections)."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import supervision as sv

from sluice.workflow.detections import DETECTION_ID, IMAGE_SHAPE, PARENT_ID, class_names


def serialize_detections(det: sv.Detections, image_shape: tuple[int, ...]) -> dict[str, Any]:
    """Detections in the pixels of an image of `image_shape` ([H, W, ...]) -> Roboflow's JSON.

    `{"image": {"width", "height"}, "predictions": [{"x", "y", "width", "height",
    "confidence", "class", "class_id", "detection_id"[, "parent_id"][, "tracker_id"]}]}` with
    x, y the box centre. The detections' own `metadata["image_shape"]` wins over `image_shape`
    (detections made on a crop are in the crop's pixels).
    """
    shape = det.metadata.get(IMAGE_SHAPE, image_shape)
    height, width = int(shape[0]), int(shape[1])
    names = class_names(det)
    ids = det.data.get(DETECTION_ID)
    parents = det.data.get(PARENT_ID)
    predictions = []
    for index in range(len(det)):
        x1, y1, x2, y2 = (float(v) for v in det.xyxy[index])
        class_id = int(det.class_id[index]) if det.class_id is not None else 0
        prediction: dict[str, Any] = {
            "x": round((x1 + x2) / 2, 2),
            "y": round((y1 + y2) / 2, 2),
            "width": round(x2 - x1, 2),
            "height": round(y2 - y1, 2),
            "confidence": (round(float(det.confidence[index]), 4) if det.confidence is not None else 1.0),
            "class": str(names[index]),
            "class_id": class_id,
            "detection_id": str(ids[index]) if ids is not None else str(uuid.uuid4()),
        }
        if parents is not None:
            prediction["parent_id"] = str(parents[index])
        if det.tracker_id is not None:
            prediction["tracker_id"] = int(det.tracker_id[index])
        predictions.append(prediction)
    return {"image": {"width": width, "height": height}, "predictions": predictions}


def _is_image(value: np.ndarray) -> bool:
    return value.dtype == np.uint8 and value.ndim == 3 and value.shape[2] in (1, 3, 4)


_PLAIN = frozenset({str, int, float, bool, type(None)})


def to_json_value(value: Any, image_shape: tuple[int, ...]) -> Any:
    """A non-image output value -> plain JSON types (detections in Roboflow's shape).

    Images inside other values (the crops of a fan-out step, a wildcard output's image) become
    `{"type": "image", "width", "height"}`: pixels only travel as image outputs.
    """
    if type(value) in _PLAIN:  # most leaves: checked first, before the five isinstance checks
        return value
    if isinstance(value, sv.Detections):
        return serialize_detections(value, image_shape)
    if isinstance(value, dict):
        return {str(k): to_json_value(v, image_shape) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v, image_shape) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if _is_image(value):
            return {"type": "image", "width": int(value.shape[1]), "height": int(value.shape[0])}
        return value.tolist()
    return value
