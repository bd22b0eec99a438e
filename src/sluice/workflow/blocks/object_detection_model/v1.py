"""sluice/object_detection_model@v1: detect objects (or text) with a model from the catalog.

Also accepted as roboflow_core/roboflow_object_detection_model@v1 and @v2.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from sluice.models import Detector, load_detector
from sluice.models.catalog import ModelCatalog
from sluice.workflow.blocks.base import BlockManifest, Element, Property
from sluice.workflow.blocks.checks import (
    check_bool,
    check_fraction,
    check_optional_strings,
    check_positive_int,
)
from sluice.workflow.blocks.runners import RunnerCache
from sluice.workflow.detections import IMAGE_SHAPE, class_names, select
from sluice.workflow.kinds import Kind
from sluice.workflow.model_checks import DETECTION_TASKS


class ObjectDetectionModel:
    """Runs every image of a batch through its detector in as few model calls as possible."""

    def __init__(self, models: ModelCatalog, intra_op_threads: int | None) -> None:
        self._detectors: RunnerCache[Detector] = RunnerCache(models, load_detector, intra_op_threads)

    def run(self, batch: list[dict[str, Any]], elements: Sequence[Element]) -> list[dict[str, Any]]:
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
            found = self._detectors.get(model_id).detect(
                [batch[i]["image"] for i in indices],
                confidence=confidence,
                iou=iou,
                max_detections=max_detections,
                class_agnostic=agnostic,
            )
            for index, detections in zip(indices, found, strict=True):
                wanted = batch[index]["class_filter"]
                if wanted:
                    detections = select(detections, np.isin(class_names(detections), wanted))
                detections.metadata[IMAGE_SHAPE] = tuple(batch[index]["image"].shape[:2])
                results[index] = {"predictions": detections}
        return results


MANIFEST = BlockManifest(
    type="sluice/object_detection_model@v1",
    description="Detect objects (or text lines) with a model from the catalog; outputs `predictions`.",
    properties={
        "image": Property((Kind.IMAGE,), required=True, selector_only=True),
        "model_id": Property((Kind.PARAMETER,), required=True, model_tasks=DETECTION_TASKS),
        "confidence": Property((Kind.PARAMETER,), default=None, check=check_fraction),
        "iou_threshold": Property((Kind.PARAMETER,), default=0.5, check=check_fraction),
        "max_detections": Property((Kind.PARAMETER,), default=300, check=check_positive_int),
        "class_agnostic_nms": Property((Kind.PARAMETER,), default=False, check=check_bool),
        "class_filter": Property((Kind.PARAMETER,), default=None, check=check_optional_strings),
    },
    outputs={"predictions": Kind.OBJECT_DETECTION},
    build=ObjectDetectionModel,
    init_parameters=("models", "intra_op_threads"),
    aliases={"images": "image"},
    ignored=frozenset({"disable_active_learning", "active_learning_target_dataset", "max_candidates"}),
    type_aliases=(
        "roboflow_core/roboflow_object_detection_model@v1",
        "roboflow_core/roboflow_object_detection_model@v2",
        "RoboflowObjectDetectionModel",
        "ObjectDetectionModel",
    ),
)
