"""sluice/label_visualization@v1: draw a text label per detection on a copy of the image.

Also accepted as roboflow_core/label_visualization@v1. The label is what `text` says (class,
confidence, ...) unless `labels` is wired to one string per detection made by steps that ran
on crops of these detections (such as the recognised text of each crop).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import supervision as sv

from sluice.workflow.blocks.base import BlockManifest, Element, Property
from sluice.workflow.blocks.bounding_box_visualization.v1 import COLOR_AXES, PALETTES
from sluice.workflow.blocks.checks import check_non_negative_int, check_one_of, check_positive, check_string
from sluice.workflow.detections import class_names, confidences
from sluice.workflow.kinds import Kind

TEXTS: dict[str, Callable[[sv.Detections], list[str]]] = {
    "Class": lambda d: [str(n) for n in class_names(d)],
    "Confidence": lambda d: [f"{c:.2f}" for c in confidences(d)],
    "Class and Confidence": lambda d: [
        f"{n} {c:.2f}" for n, c in zip(class_names(d), confidences(d), strict=True)
    ],
    "Index": lambda d: [str(i) for i in range(len(d))],
    "Dimensions": lambda d: [f"{int(x2 - x1)}x{int(y2 - y1)}" for x1, y1, x2, y2 in d.xyxy],
    "Area": lambda d: [str(int(a)) for a in d.box_area],
    "Tracker Id": lambda d: [str(t) for t in (d.tracker_id if d.tracker_id is not None else [""] * len(d))],
}
POSITIONS = tuple(position.name for position in sv.Position)


def color(name: str) -> sv.Color:
    """A colour by name (WHITE, BLACK, ...) or hex (#rrggbb)."""
    if name.startswith("#"):
        return sv.Color.from_hex(name)
    found = getattr(sv.Color, name.upper(), None)
    if not isinstance(found, sv.Color):
        raise ValueError(f"unknown colour {name!r}")
    return found


def _check_color(value: Any) -> None:
    check_string(value)
    try:
        color(value)
    except ValueError as error:
        raise ValueError(f"{error}; use a name such as WHITE or a hex code such as #ff0000") from None


class LabelVisualization:
    def _labels(self, item: dict[str, Any]) -> list[str]:
        detections: sv.Detections = item["predictions"]
        labels = item["labels"]
        if labels is None:
            return TEXTS[item["text"]](detections)
        if len(labels) != len(detections):
            raise ValueError(f"labels has {len(labels)} entries for {len(detections)} detections")
        return ["" if label is None else str(label) for label in labels]

    def run(self, batch: list[dict[str, Any]], elements: Sequence[Element]) -> list[dict[str, Any]]:
        results = []
        for item in batch:
            annotator = sv.LabelAnnotator(
                color=getattr(sv.ColorPalette, item["color_palette"]),
                color_lookup=COLOR_AXES[item["color_axis"]],
                text_color=color(item["text_color"]),
                text_scale=float(item["text_scale"]),
                text_thickness=item["text_thickness"],
                text_padding=item["text_padding"],
                text_position=sv.Position[item["text_position"]],
                border_radius=item["border_radius"],
            )
            scene = np.ascontiguousarray(item["image"].copy())
            image = annotator.annotate(scene, item["predictions"], labels=self._labels(item))
            results.append({"image": image})
        return results


MANIFEST = BlockManifest(
    type="sluice/label_visualization@v1",
    description="Draw a label per detection (`text`, or `labels` made per crop) on a copy of `image`.",
    properties={
        "image": Property((Kind.IMAGE,), required=True, selector_only=True),
        "predictions": Property((Kind.OBJECT_DETECTION,), required=True, selector_only=True),
        "labels": Property(
            (Kind.STRING,),
            selector_only=True,
            dimensionality_offset=1,
            description="One label per detection, from steps that ran on its crop.",
        ),
        "text": Property((Kind.PARAMETER,), default="Class", check=check_one_of(*TEXTS)),
        "text_position": Property((Kind.PARAMETER,), default="TOP_LEFT", check=check_one_of(*POSITIONS)),
        "text_color": Property((Kind.PARAMETER,), default="WHITE", check=_check_color),
        "text_scale": Property((Kind.PARAMETER,), default=1.0, check=check_positive),
        "text_thickness": Property((Kind.PARAMETER,), default=1, check=check_non_negative_int),
        "text_padding": Property((Kind.PARAMETER,), default=10, check=check_non_negative_int),
        "border_radius": Property((Kind.PARAMETER,), default=0, check=check_non_negative_int),
        "color_palette": Property((Kind.PARAMETER,), default="DEFAULT", check=check_one_of(*PALETTES)),
        "color_axis": Property((Kind.PARAMETER,), default="CLASS", check=check_one_of(*COLOR_AXES)),
    },
    outputs={"image": Kind.IMAGE},
    build=LabelVisualization,
    ignored=frozenset({"copy_image", "palette_size", "custom_colors"}),
    type_aliases=("roboflow_core/label_visualization@v1", "LabelVisualization"),
)
