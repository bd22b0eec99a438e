"""Real photographs for tests, from the scikit-image wheel (no downloads)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np
import skimage

PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "motorcycle_left.png",
    "rocket.jpg",
    "page.png",
    "text.png",
)


def data_dir() -> Path:
    return Path(skimage.__file__).parent / "data"


@cache
def photographs() -> tuple[np.ndarray, ...]:
    """The photographs as BGR uint8 arrays [H, W, 3]."""
    images = []
    for name in PHOTOS:
        image = cv2.imread(str(data_dir() / name), cv2.IMREAD_COLOR)
        assert image is not None, name
        images.append(image)
    return tuple(images)
