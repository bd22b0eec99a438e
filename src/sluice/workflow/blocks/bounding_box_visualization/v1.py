"""sluice/bounding_box_visualization@v1: draw detection boxes on a copy of the image.

Also accepted as roboflow_core/bounding_box_visualization@v1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import supervision as sv

from sluice.workflow.blocks.base import BlockManifest, Element, Property
from sluice.workflow.blocks.checks import check_one_of, check_positive_int
from sluice.workflow.kinds import Kind

PALETTES = ("DEFAULT", "ROBOFLOW", "LEGACY")
COLOR_AXES = {"CLASS": sv.ColorLookup.CLASS, "INDEX": sv.ColorLookup.INDEX, "TRACK": sv.ColorLookup.TRACK}


class BoundingBoxVisualization:
    """Draws each image's predictions with `sv.BoxAnnotator`; the input image is left as is."""

    def run(self, batch: list[dict[str, Any]], elements: Sequence[Element]) -> list[dict[str, Any]]:
        results = []
        for item in batch:
            annotator = sv.BoxAnnotator(
                color=getattr(sv.ColorPalette, item["color_palette"]),
                thickness=item["thickness"],
                color_lookup=COLOR_AXES[item["color_axis"]],
            )
            results.append({"image": annotator.annotate(item["image"].copy(), item["predictions"])})
        return results


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
    build=BoundingBoxVisualization,
    ignored=frozenset({"copy_image", "palette_size", "custom_colors"}),
    type_aliases=("roboflow_core/bounding_box_visualization@v1", "BoundingBoxVisualization"),
)
