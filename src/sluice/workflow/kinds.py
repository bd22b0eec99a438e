"""Kinds: what a value flowing between steps is, so the compiler can check the wiring."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    IMAGE = "image"
    """A BGR uint8 image [H, W, 3]."""
    OBJECT_DETECTION = "object_detection_prediction"
    """An `sv.Detections` in the coordinates of the image it was made from."""
    PARAMETER = "parameter"
    """A plain JSON value given when the workflow runs (or its default)."""
