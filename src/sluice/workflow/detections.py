"""Helpers around `sv.Detections` as the workflow carries them: ids, names, empty results.

Every detection a step outputs carries `data["detection_id"]` (a uuid, kept through filters
and transformations) and `data["parent_id"]` (the id of the element it was found in: the
input's name for an input image, a detection id for a crop). `data["class_name"]` holds class
names. `metadata["image_shape"]` is (H, W) of the image the boxes are in, when known.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import cast

import numpy as np
import supervision as sv

CLASS_NAME = "class_name"
DETECTION_ID = "detection_id"
PARENT_ID = "parent_id"
IMAGE_SHAPE = "image_shape"


def empty_detections() -> sv.Detections:
    """No detections, with the same fields as a non-empty result."""
    return sv.Detections(
        xyxy=np.empty((0, 4), dtype=np.float32),
        confidence=np.empty(0, dtype=np.float32),
        class_id=np.empty(0, dtype=np.int64),
        data={CLASS_NAME: np.empty(0, dtype=str)},
    )


def select(detections: sv.Detections, which: np.ndarray) -> sv.Detections:
    """The detections picked by a boolean mask or an index array [K] (ids and data kept)."""
    return cast(sv.Detections, detections[which])


def class_names(detections: sv.Detections) -> np.ndarray:
    """Class names [N] (the class id as text when a model gave no names)."""
    names = detections.data.get(CLASS_NAME)
    if names is not None:
        return np.asarray(names, dtype=str)
    if detections.class_id is not None:
        return detections.class_id.astype(str)
    return np.full(len(detections), "", dtype=str)


def confidences(detections: sv.Detections) -> np.ndarray:
    """Confidences [N] (1.0 where a model gave none)."""
    if detections.confidence is None:
        return np.ones(len(detections), dtype=np.float32)
    return np.asarray(detections.confidence, dtype=np.float32)


def with_ids(detections: sv.Detections, parent_id: str) -> sv.Detections:
    """`detections` with a detection id and parent id on each (existing ones are kept)."""
    if DETECTION_ID in detections.data and PARENT_ID in detections.data:
        return detections
    count = len(detections)
    data = dict(detections.data)
    if DETECTION_ID not in data:
        data[DETECTION_ID] = np.asarray([str(uuid.uuid4()) for _ in range(count)], dtype=object)
    if PARENT_ID not in data:
        data[PARENT_ID] = np.asarray([parent_id] * count, dtype=object)
    return dataclasses.replace(detections, data=data)


def detection_ids(detections: sv.Detections) -> list[str]:
    ids = detections.data.get(DETECTION_ID)
    if ids is None:
        return [""] * len(detections)
    return [str(value) for value in ids]
