"""sluice/dynamic_crop@v1: cut one crop out of the image per detection (a fan-out step).

Also accepted as roboflow_core/dynamic_crop@v1. Steps that read `crops` run once per crop of
every image, in one batch; their outputs come back nested per image, one entry per detection
in detection order. Each crop's id is its detection's `detection_id`, so results made from a
crop carry that id as their `parent_id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import supervision as sv

from sluice.workflow.blocks.base import BlockManifest, Child, Element, Property
from sluice.workflow.detections import detection_ids
from sluice.workflow.kinds import Kind


def crop(image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """The [h, w, 3] region of `image` [H, W, 3] under box `xyxy` (rounded, clipped; at least 1 pixel)."""
    region = sv.crop_image(image, xyxy)
    if region.shape[0] > 0 and region.shape[1] > 0:
        return np.ascontiguousarray(region)
    height, width = image.shape[:2]
    x = int(np.clip(round(float(xyxy[0])), 0, width - 1))
    y = int(np.clip(round(float(xyxy[1])), 0, height - 1))
    return np.ascontiguousarray(image[y : y + 1, x : x + 1])


class DynamicCrop:
    def run(self, batch: list[dict[str, Any]], elements: Sequence[Element]) -> list[list[Child]]:
        results = []
        for item in batch:
            image, detections = item["image"], item["predictions"]
            ids = detection_ids(detections)
            results.append(
                [Child(ids[i], {"crops": crop(image, detections.xyxy[i])}) for i in range(len(detections))]
            )
        return results


MANIFEST = BlockManifest(
    type="sluice/dynamic_crop@v1",
    description="One crop of `image` per detection in `predictions`; outputs `crops` (one per detection).",
    properties={
        "image": Property((Kind.IMAGE,), required=True, selector_only=True),
        "predictions": Property((Kind.OBJECT_DETECTION,), required=True, selector_only=True),
    },
    outputs={"crops": Kind.IMAGE},
    build=DynamicCrop,
    aliases={"images": "image"},
    ignored=frozenset({"mask_opacity", "background_color"}),
    type_aliases=("roboflow_core/dynamic_crop@v1", "Crop", "DynamicCrop"),
    output_dimensionality_offset=1,
)
