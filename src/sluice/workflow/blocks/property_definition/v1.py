"""sluice/property_definition@v1: one property of a value: a count, the class names, ...

Also accepted as roboflow_core/property_definition@v1, whose `operations` (Roboflow's query
language, e.g. [{"type": "SequenceLength"}], see `blocks/uql.py`) work too. `property` names
one of PROPERTIES; `operations`, when given, run instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import supervision as sv

from sluice.workflow.blocks import uql
from sluice.workflow.blocks.base import BlockManifest, Element, Property
from sluice.workflow.blocks.checks import check_one_of
from sluice.workflow.detections import PARENT_ID, class_names, confidences, detection_ids
from sluice.workflow.kinds import Kind

DETECTION_PROPERTIES: dict[str, Callable[[sv.Detections], Any]] = {
    "count": len,
    "class_names": lambda d: class_names(d).tolist(),
    "class_ids": lambda d: [] if d.class_id is None else [int(v) for v in d.class_id],
    "confidences": lambda d: [float(v) for v in confidences(d)],
    "detection_ids": detection_ids,
    "parent_ids": lambda d: [str(v) for v in d.data.get(PARENT_ID, [""] * len(d))],
    "boxes": lambda d: [[float(v) for v in box] for box in d.xyxy],
    "areas": lambda d: [float(v) for v in d.box_area],
    "tracker_ids": lambda d: [] if d.tracker_id is None else [int(v) for v in d.tracker_id],
}
CLASSIFICATION_PROPERTIES: dict[str, str] = {
    "count": "all_classes",
    "top_class": "top_class",
    "top_confidence": "top_class_confidence",
    "class_names": "all_classes",
    "confidences": "all_confidences",
}
PROPERTIES = tuple(dict.fromkeys([*DETECTION_PROPERTIES, *CLASSIFICATION_PROPERTIES]))


def extract(value: Any, name: str) -> Any:
    """Property `name` of detections, a classification, or a list (whose property is its count)."""
    if isinstance(value, sv.Detections) and name in DETECTION_PROPERTIES:
        return DETECTION_PROPERTIES[name](value)
    if isinstance(value, dict) and name in CLASSIFICATION_PROPERTIES:
        operation = {
            "type": "ClassificationPropertyExtract",
            "property_name": CLASSIFICATION_PROPERTIES[name],
        }
        found = uql.apply([operation], value, {})
        return len(found) if name == "count" else found
    if isinstance(value, list | tuple | str) and name == "count":
        return len(value)
    raise ValueError(f"property {name!r} does not apply to {type(value).__name__}")


class PropertyDefinition:
    def run(self, batch: list[dict[str, Any]], elements: Sequence[Element]) -> list[dict[str, Any]]:
        results = []
        for item in batch:
            if item["operations"]:
                results.append({"output": uql.apply(item["operations"], item["data"], {})})
            else:
                results.append({"output": extract(item["data"], item["property"])})
        return results


MANIFEST = BlockManifest(
    type="sluice/property_definition@v1",
    description="Extract `property` (count, class_names, confidences, ...) of `data`; outputs `output`.",
    properties={
        "data": Property((Kind.ANY,), required=True, selector_only=True),
        "property": Property((Kind.PARAMETER,), default="count", check=check_one_of(*PROPERTIES)),
        "operations": Property((Kind.PARAMETER,), default=None, check=uql.check_operations),
    },
    outputs={"output": Kind.ANY},
    build=PropertyDefinition,
    type_aliases=("roboflow_core/property_definition@v1", "PropertyDefinition"),
)
