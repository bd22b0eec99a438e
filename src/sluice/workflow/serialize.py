"""Turning step outputs into JSON values (Roboflow's shape for detections)."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import supervision as sv

CLASS_NAME = "class_name"


def serialize_detections(det: sv.Detections, image_shape: tuple[int, ...]) -> dict[str, Any]:
    """Detections in the pixels of an image of `image_shape` ([H, W, ...]) -> Roboflow's JSON.

    `{"image": {"width", "height"}, "predictions": [{"x", "y", "width", "height",
    "confidence", "class", "class_id", "detection_id"}]}` with x, y the box centre.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    names = det.data.get(CLASS_NAME)
    predictions = []
    for index in range(len(det)):
        x1, y1, x2, y2 = (float(v) for v in det.xyxy[index])
        class_id = int(det.class_id[index]) if det.class_id is not None else 0
        predictions.append(
            {
                "x": round((x1 + x2) / 2, 2),
                "y": round((y1 + y2) / 2, 2),
                "width": round(x2 - x1, 2),
                "height": round(y2 - y1, 2),
                "confidence": (round(float(det.confidence[index]), 4) if det.confidence is not None else 1.0),
                "class": str(names[index]) if names is not None else str(class_id),
                "class_id": class_id,
                "detection_id": str(uuid.uuid4()),
            }
        )
    return {"image": {"width": width, "height": height}, "predictions": predictions}


def to_json_value(value: Any, image_shape: tuple[int, ...]) -> Any:
    """A non-image output value -> plain JSON types (detections in Roboflow's shape)."""
    if isinstance(value, sv.Detections):
        return serialize_detections(value, image_shape)
    if isinstance(value, dict):
        return {str(k): to_json_value(v, image_shape) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v, image_shape) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
