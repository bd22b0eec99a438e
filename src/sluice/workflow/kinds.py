"""Kinds: what a value flowing between steps is, so the compiler can check the wiring."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    IMAGE = "image"
    """A BGR uint8 image [H, W, 3]."""
    OBJECT_DETECTION = "object_detection_prediction"
    """An `sv.Detections` in the coordinates of the image it was made from, with
    `data["detection_id"]` and `data["parent_id"]` (see README.md, "Detection ids")."""
    CLASSIFICATION = "classification_prediction"
    """A dict in Roboflow's classification shape: `top`, `confidence`, `predictions`."""
    STRING = "string"
    FLOAT = "float"
    INTEGER = "integer"
    LIST = "list_of_values"
    VIDEO_METADATA = "video_metadata"
    """The metadata dict of the element (`video_id`, `frame_number`, ...)."""
    PARAMETER = "parameter"
    """A plain JSON value given when the workflow runs (or its default)."""
    ANY = "*"
    """Anything: an output whose kind depends on its configuration, or a property that takes all."""


def accepts(expected: tuple[Kind, ...], actual: Kind) -> bool:
    """Whether a property that takes `expected` kinds may be wired to a value of kind `actual`.

    A wildcard on either side matches any kind except a workflow parameter (parameters go only
    where a plain value may go).
    """
    if actual in expected:
        return True
    if actual == Kind.PARAMETER:
        return False
    return Kind.ANY in expected or (actual == Kind.ANY and Kind.PARAMETER not in expected)
