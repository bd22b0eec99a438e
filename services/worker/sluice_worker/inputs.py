"""Reading a task's input objects and decoding them; a bad input becomes a reason, not a crash."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from sluice import storage
from sluice_worker import MAX_MEGAPIXELS
from sluice_worker.image_header import image_size

EMPTY = "empty file"
UNDECODABLE = "cannot decode image (not a supported image or corrupt)"
TOO_LARGE = "image too large"
NOT_FOUND = "input object not found"


@dataclass(frozen=True)
class LoadedInput:
    """One input: its decoded BGR image [H, W, 3] uint8, or why there is none."""

    name: str
    image: np.ndarray | None = None
    error: str | None = None


def _too_large(width: int, height: int) -> str | None:
    if width * height > MAX_MEGAPIXELS * 1_000_000:
        return f"{TOO_LARGE} ({width}x{height} pixels; the limit is {MAX_MEGAPIXELS} megapixels)"
    return None


def decode_image(name: str, data: bytes) -> LoadedInput:
    """Encoded bytes -> a BGR image, or an error reason (empty, too large, undecodable)."""
    if not data:
        return LoadedInput(name, error=EMPTY)
    size = image_size(data)
    if size is not None and (reason := _too_large(*size)):
        return LoadedInput(name, error=reason)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        return LoadedInput(name, error=UNDECODABLE)
    if reason := _too_large(image.shape[1], image.shape[0]):
        return LoadedInput(name, error=reason)
    return LoadedInput(name, image=image)


def load_inputs(input_url: str, names: Sequence[str]) -> list[LoadedInput]:
    """Read and decode each named object under `input_url` (blocking).

    A missing object is an error record; any other OSError (the store is unreachable) is raised
    so the task can be retried.
    """
    loaded = []
    for name, data in zip(names, storage.read_many(input_url, names), strict=True):
        if isinstance(data, FileNotFoundError):
            loaded.append(LoadedInput(name, error=NOT_FOUND))
            continue
        loaded.append(decode_image(name, data))
    return loaded
