"""Preparing text-line crops for a `fixed-height` model (PP-OCR's recogniser and angle classifier).

Each crop is scaled to the model's input height keeping its aspect ratio (at most `max_side`
wide, squeezed beyond that), normalised, and laid at the left of its batch's tensor; the rest
of the row is zero (the normalised value of padding, as PaddleOCR pads). Crops are sorted by
aspect ratio before batching, so crops of similar width share a batch and little is padded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from sluice.models.preprocess import as_bgr, to_tensor
from sluice.models.spec import ModelSpec


def line_width(image_width: int, image_height: int, spec: ModelSpec) -> int:
    """The width [pixels] a crop of `image_width` x `image_height` takes in the model input."""
    assert spec.input_size is not None
    height = spec.input_size[1]
    return max(1, min(spec.max_side, math.ceil(height * image_width / image_height)))


def line_batches(images: Sequence[np.ndarray], spec: ModelSpec) -> list[tuple[np.ndarray, list[int]]]:
    """Non-empty crops (BGR uint8 [h, w, 3], gray or BGRA accepted) -> (tensor, indices) batches.

    Each tensor is float32 [n, 3, H, W] with H the spec's input height and W the widest crop of
    the batch (at least `input_size[0]`); `indices` point into `images`, at most `max_batch` each.
    """
    if spec.input_size is None:
        raise ValueError(f"model {spec.model_id!r}: fixed-height needs an input_size")
    min_width, height = spec.input_size
    ratios = [image.shape[1] / image.shape[0] for image in images]
    order = sorted(range(len(images)), key=lambda i: ratios[i])
    batches = []
    for start in range(0, len(order), spec.max_batch):
        indices = order[start : start + spec.max_batch]
        widths = [line_width(images[i].shape[1], images[i].shape[0], spec) for i in indices]
        tensor = np.zeros((len(indices), 3, height, max(min_width, *widths)), dtype=np.float32)
        for row, (index, width) in enumerate(zip(indices, widths, strict=True)):
            resized = cv2.resize(as_bgr(images[index]), (width, height), interpolation=cv2.INTER_LINEAR)
            tensor[row, :, :, :width] = to_tensor([resized], spec)[0]
        batches.append((tensor, indices))
    return batches
