"""Orientation classifiers: class names are the clockwise rotation (degrees) an image has had.

`sluice/orientation` answers "0", "90", "180" or "270": an image rotated 90 degrees clockwise
gives "90", and `upright` turns it back.
"""

from __future__ import annotations

import cv2
import numpy as np

from sluice.models.classification import ClassificationResult

_UNDO = {
    90: cv2.ROTATE_90_COUNTERCLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_CLOCKWISE,
}


def rotation_degrees(result: ClassificationResult) -> int:
    """The clockwise rotation (0, 90, 180 or 270) an orientation model found."""
    return int(result.class_name)


def upright(image: np.ndarray, degrees: int) -> np.ndarray:
    """Undo a clockwise rotation of `degrees` (a multiple of 90) of an image [H, W, ...]."""
    turn = degrees % 360
    if turn == 0:
        return image
    if turn not in _UNDO:
        raise ValueError(f"rotation must be a multiple of 90 degrees, not {degrees}")
    return cv2.rotate(image, _UNDO[turn])
