"""sluice/detections_transformation@v1: grow, scale and shift boxes, then keep the top k.

Also accepted as roboflow_core/detections_transformation@v1, whose `operations` (Roboflow's
query language, see `blocks/uql.py`) and `operations_parameters` run after the block's own
steps. Boxes stay inside their image when its size is known; ids are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import supervision as sv

from sluice.workflow.blocks import uql
from sluice.workflow.blocks.base import BlockManifest, Element, Property
from sluice.workflow.blocks.checks import check_non_negative, check_positive, check_positive_int
from sluice.workflow.detections import confidences, select
from sluice.workflow.kinds import Kind


def scaled(detections: sv.Detections, factor: float) -> sv.Detections:
    """Boxes scaled by `factor` about their centres."""
    centres = (detections.xyxy[:, :2] + detections.xyxy[:, 2:]) / 2
    half = (detections.xyxy[:, 2:] - detections.xyxy[:, :2]) * factor / 2
    return uql.with_boxes(detections, np.concatenate([centres - half, centres + half], axis=1))


def top_k(detections: sv.Detections, k: int) -> sv.Detections:
    """The `k` most confident detections, most confident first."""
    order = np.argsort(-confidences(detections), kind="stable")[:k]
    return select(detections, order)


def transform(detections: sv.Detections, item: dict[str, Any]) -> Any:
    if item["offset_x"] or item["offset_y"]:
        detections = uql.offset(detections, item["offset_x"] or 0, item["offset_y"] or 0)
    if item["scale"] is not None and item["scale"] != 1:
        detections = scaled(detections, item["scale"])
    if item["top_k"] is not None:
        detections = top_k(detections, item["top_k"])
    if item["operations"]:
        return uql.apply(item["operations"], detections, item["operations_parameters"] or {})
    return detections


class DetectionsTransformation:
    def run(self, batch: list[dict[str, Any]], elements: Sequence[Element]) -> list[dict[str, Any]]:
        return [{"predictions": transform(item["predictions"], item)} for item in batch]


MANIFEST = BlockManifest(
    type="sluice/detections_transformation@v1",
    description=(
        "Grow boxes by `offset_x`/`offset_y` pixels (half on each side), scale them by `scale` about "
        "their centres, keep the `top_k` most confident; outputs `predictions`."
    ),
    properties={
        "predictions": Property((Kind.OBJECT_DETECTION,), required=True, selector_only=True),
        "offset_x": Property((Kind.PARAMETER,), default=None, check=check_non_negative),
        "offset_y": Property((Kind.PARAMETER,), default=None, check=check_non_negative),
        "scale": Property((Kind.PARAMETER,), default=None, check=check_positive),
        "top_k": Property((Kind.PARAMETER,), default=None, check=check_positive_int),
        "operations": Property((Kind.PARAMETER,), default=None, check=uql.check_operations),
        "operations_parameters": Property((Kind.PARAMETER,), default=None, parameters_inside=True),
    },
    outputs={"predictions": Kind.OBJECT_DETECTION},
    build=DetectionsTransformation,
    type_aliases=("roboflow_core/detections_transformation@v1", "DetectionsTransformation"),
)
