"""sluice/object_detection_model@v1: detect objects with a model from the registry.

Also accepted as roboflow_core/roboflow_object_detection_model@v1 and @v2.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from sluice.models import is_known, known_models, load_detector
from sluice.models.decoders import select
from sluice.workflow.blocks.base import (
    BlockContext,
    BlockManifest,
    Property,
    check_bool,
    check_fraction,
    check_optional_strings,
    check_positive_int,
)
from sluice.workflow.kinds import Kind


def check_model_id(value: Any) -> None:
    if not isinstance(value, str) or not is_known(value):
        raise ValueError(f"unknown model {value!r}; known models: {', '.join(known_models())}")


class ObjectDetectionModel:
    """Runs every image of a batch through the detector in as few model calls as possible."""

    def __init__(self, context: BlockContext) -> None:
        self._threads = context.intra_op_threads

    def run(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for index, item in enumerate(batch):
            key = (
                item["model_id"],
                item["confidence"],
                item["iou_threshold"],
                item["max_detections"],
                item["class_agnostic_nms"],
            )
            groups[key].append(index)
        results: list[dict[str, Any]] = [{} for _ in batch]
        for (model_id, confidence, iou, max_detections, agnostic), indices in groups.items():
            detector = load_detector(model_id, self._threads)
            found = detector.detect(
                [batch[i]["image"] for i in indices],
                confidence=confidence,
                iou=iou,
                max_detections=max_detections,
                class_agnostic=agnostic,
            )
            for index, detections in zip(indices, found, strict=True):
                wanted = batch[index]["class_filter"]
                if wanted:
                    detections = select(detections, np.isin(detections.data["class_name"], wanted))
                results[index] = {"predictions": detections}
        return results


def _build(context: BlockContext) -> ObjectDetectionModel:
    return ObjectDetectionModel(context)


MANIFEST = BlockManifest(
    type="sluice/object_detection_model@v1",
    description="Detect objects with a registered model; outputs `predictions`.",
    properties={
        "image": Property((Kind.IMAGE,), required=True, selector_only=True),
        "model_id": Property((Kind.PARAMETER,), required=True, check=check_model_id),
        "confidence": Property((Kind.PARAMETER,), default=None, check=check_fraction),
        "iou_threshold": Property((Kind.PARAMETER,), default=0.5, check=check_fraction),
        "max_detections": Property((Kind.PARAMETER,), default=300, check=check_positive_int),
        "class_agnostic_nms": Property((Kind.PARAMETER,), default=False, check=check_bool),
        "class_filter": Property((Kind.PARAMETER,), default=None, check=check_optional_strings),
    },
    outputs={"predictions": Kind.OBJECT_DETECTION},
    build=_build,
    aliases={"images": "image"},
    ignored=frozenset({"disable_active_learning", "active_learning_target_dataset", "max_candidates"}),
)
