"""sluice/detections_filter@v1: keep the detections that pass class, confidence and area tests.

Also accepted as roboflow_core/detections_filter@v1, whose `operations` (a `DetectionsFilter`
in Roboflow's query language, see `blocks/uql.py`) and `operations_parameters` work here too.
Kept detections keep their ids and order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import supervision as sv

from sluice.workflow.blocks import uql
from sluice.workflow.blocks.base import BlockManifest, Element, Property
from sluice.workflow.blocks.checks import check_fraction, check_non_negative, check_optional_strings
from sluice.workflow.detections import class_names, confidences, select
from sluice.workflow.kinds import Kind


def keep_mask(detections: sv.Detections, item: dict[str, Any]) -> np.ndarray:
    """Which detections [N] pass the block's own tests."""
    keep = np.ones(len(detections), dtype=bool)
    if item["class_filter"]:
        keep &= np.isin(class_names(detections), item["class_filter"])
    if item["confidence"] is not None:
        keep &= confidences(detections) >= item["confidence"]
    if item["min_area"] is not None:
        keep &= detections.box_area >= item["min_area"]
    if item["max_area"] is not None:
        keep &= detections.box_area <= item["max_area"]
    return keep


class DetectionsFilter:
    def run(self, batch: list[dict[str, Any]], elements: Sequence[Element]) -> list[dict[str, Any]]:
        results = []
        for item in batch:
            detections = item["predictions"]
            kept = select(detections, keep_mask(detections, item))
            if item["operations"]:
                kept = uql.apply(item["operations"], kept, item["operations_parameters"] or {})
            results.append({"predictions": kept})
        return results


MANIFEST = BlockManifest(
    type="sluice/detections_filter@v1",
    description="Keep detections by class, minimum confidence and box area (pixels); outputs `predictions`.",
    properties={
        "predictions": Property((Kind.OBJECT_DETECTION,), required=True, selector_only=True),
        "class_filter": Property((Kind.PARAMETER,), default=None, check=check_optional_strings),
        "confidence": Property((Kind.PARAMETER,), default=None, check=check_fraction),
        "min_area": Property((Kind.PARAMETER,), default=None, check=check_non_negative),
        "max_area": Property((Kind.PARAMETER,), default=None, check=check_non_negative),
        "operations": Property((Kind.PARAMETER,), default=None, check=uql.check_operations),
        "operations_parameters": Property((Kind.PARAMETER,), default=None, parameters_inside=True),
    },
    outputs={"predictions": Kind.OBJECT_DETECTION},
    build=DetectionsFilter,
    type_aliases=("roboflow_core/detections_filter@v1", "DetectionFilter", "DetectionsFilter"),
)
