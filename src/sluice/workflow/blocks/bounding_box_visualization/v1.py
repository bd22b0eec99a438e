"""sluice/bounding_box_visualization@v1: draw detection boxes on a copy of the image.

Also accepted as roboflow_core/bounding_box_visualization@v1.
"""

from __future__ import annotations

import threading
from typing import Any

import supervision as sv

from sluice.workflow.blocks.base import (
    BlockContext,
    BlockManifest,
    Property,
    check_one_of,
    check_positive_int,
)
from sluice.workflow.kinds import Kind

PALETTES = ("DEFAULT", "ROBOFLOW", "LEGACY")
COLOR_AXES = {"CLASS": sv.ColorLookup.CLASS, "INDEX": sv.ColorLookup.INDEX}


class BoundingBoxVisualization:
    """Draws each image's predictions with `sv.BoxAnnotator`; the input image is left as is."""

    def __init__(self, context: BlockContext) -> None:
        self._lock = threading.Lock()
        self._annotators: dict[tuple[int, str, str], sv.BoxAnnotator] = {}

    def _annotator(self, thickness: int, palette: str, axis: str) -> sv.BoxAnnotator:
        key = (thickness, palette, axis)
        with self._lock:
            annotator = self._annotators.get(key)
            if annotator is None:
                annotator = sv.BoxAnnotator(
                    color=getattr(sv.ColorPalette, palette),
                    thickness=thickness,
                    color_lookup=COLOR_AXES[axis],
                )
                self._annotators[key] = annotator
            return annotator

    def run(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results = []
        for item in batch:
            annotator = self._annotator(item["thickness"], item["color_palette"], item["color_axis"])
            results.append({"image": annotator.annotate(item["image"].copy(), item["predictions"])})
        return results


def _build(context: BlockContext) -> BoundingBoxVisualization:
    return BoundingBoxVisualization(context)


MANIFEST = BlockManifest(
    type="sluice/bounding_box_visualization@v1",
    description="Draw `predictions` as boxes on a copy of `image`; outputs `image`.",
    properties={
        "image": Property((Kind.IMAGE,), required=True, selector_only=True),
        "predictions": Property((Kind.OBJECT_DETECTION,), required=True, selector_only=True),
        "thickness": Property((Kind.PARAMETER,), default=2, check=check_positive_int),
        "color_palette": Property((Kind.PARAMETER,), default="DEFAULT", check=check_one_of(*PALETTES)),
        "color_axis": Property((Kind.PARAMETER,), default="CLASS", check=check_one_of(*COLOR_AXES)),
    },
    outputs={"image": Kind.IMAGE},
    build=_build,
    ignored=frozenset({"copy_image", "palette_size", "custom_colors"}),
)
