"""Fitting images to a model input and turning them into a normalised NCHW tensor."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from sluice.models.spec import ModelSpec


@dataclass(frozen=True)
class Placement:
    """Where an original image lies in the model input: `input = original * scale + pad`."""

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    image_width: int
    image_height: int

    def to_original(self, xyxy: np.ndarray) -> np.ndarray:
        """Model-input boxes [N, 4] (x1, y1, x2, y2) -> original-image boxes, clipped to it."""
        out = np.empty(xyxy.shape, dtype=np.float32)
        xs, ys = out[:, 0::2], out[:, 1::2]  # views: x1, x2 and y1, y2
        xs[:] = (xyxy[:, 0::2] - self.pad_x) / self.scale_x
        ys[:] = (xyxy[:, 1::2] - self.pad_y) / self.scale_y
        np.clip(xs, 0, self.image_width, out=xs)
        np.clip(ys, 0, self.image_height, out=ys)
        return out


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Any uint8 image ([H, W], [H, W, 1], [H, W, 3] BGR or [H, W, 4] BGRA) -> [H, W, 3] BGR."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected an image of shape [H, W, 3], got {image.shape}")


def _round_to(value: float, stride: int) -> int:
    return max(stride, round(value / stride) * stride)


def input_size_for(spec: ModelSpec, width: int, height: int) -> tuple[int, int]:
    """The (width, height) of the model input for an image of `width` x `height`."""
    if spec.input_size is not None:
        return spec.input_size
    ratio = spec.max_side / max(width, height)
    if spec.resize_mode == "resize":
        return _round_to(width * ratio, spec.stride), _round_to(height * ratio, spec.stride)
    content_w, content_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    return (
        math.ceil(content_w / spec.stride) * spec.stride,
        math.ceil(content_h / spec.stride) * spec.stride,
    )


def _center_crop(
    image: np.ndarray, spec: ModelSpec, target_w: int, target_h: int
) -> tuple[np.ndarray, Placement]:
    """Scale so the input covers `crop_fraction` of the image's shorter side; cut the centre."""
    height, width = image.shape[:2]
    ratio = max(target_w / width, target_h / height) / spec.crop_fraction
    scaled_w = max(target_w, round(width * ratio))
    scaled_h = max(target_h, round(height * ratio))
    shrinking = scaled_w * scaled_h < width * height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(image, (scaled_w, scaled_h), interpolation=interpolation)
    left, top = (scaled_w - target_w) // 2, (scaled_h - target_h) // 2
    crop = resized[top : top + target_h, left : left + target_w]
    return crop, Placement(scaled_w / width, scaled_h / height, -left, -top, width, height)


def fit(image: np.ndarray, spec: ModelSpec) -> tuple[np.ndarray, Placement]:
    """Resize (and for letterbox, pad; for center-crop, cut) a [H, W, 3] image to the input [h, w, 3]."""
    height, width = image.shape[:2]
    target_w, target_h = input_size_for(spec, width, height)
    if spec.resize_mode == "center-crop":
        return _center_crop(image, spec, target_w, target_h)
    if spec.resize_mode == "fixed-height":
        raise ValueError("fixed-height inputs are prepared by sluice.models.text_lines")
    if spec.resize_mode == "resize":
        resized = cv2.resize(image, (target_w, target_h), interpolation=cv2.INTER_LINEAR)
        return resized, Placement(target_w / width, target_h / height, 0, 0, width, height)
    ratio = min(target_w / width, target_h / height)
    content_w = min(target_w, max(1, round(width * ratio)))
    content_h = min(target_h, max(1, round(height * ratio)))
    resized = cv2.resize(image, (content_w, content_h), interpolation=cv2.INTER_LINEAR)
    left, top = (target_w - content_w) // 2, (target_h - content_h) // 2
    padded = cv2.copyMakeBorder(
        resized,
        top,
        target_h - content_h - top,
        left,
        target_w - content_w - left,
        cv2.BORDER_CONSTANT,
        value=(spec.pad_value,) * 3,
    )
    placement = Placement(content_w / width, content_h / height, left, top, width, height)
    return padded, placement


def to_tensor(images: Sequence[np.ndarray], spec: ModelSpec) -> np.ndarray:
    """Same-sized BGR uint8 images [h, w, 3] -> float32 [N, 3, h, w], normalised for `spec`.

    value = (pixel * scale - mean) / std, with channels in the model's order. OpenCV's blob
    builder does it in one pass (about ten times numpy's cost per pixel less, which counts for a
    light model); a spec with scale 0 (every value the same) takes numpy's way.
    """
    if spec.scale == 0:
        return _to_tensor_numpy(images, spec)
    height, width = images[0].shape[:2]
    params = cv2.dnn.Image2BlobParams()
    # (pixel - mean / scale) * (scale / std) per channel, in the model's channel order
    params.scalefactor = (*(spec.scale / s for s in spec.std), 0.0)
    params.mean = (*(m / spec.scale for m in spec.mean), 0.0)
    params.swapRB = spec.channel_order == "rgb"
    params.ddepth = cv2.CV_32F
    params.datalayout = cv2.dnn.DNN_LAYOUT_NCHW
    params.size = (width, height)
    blob: np.ndarray = cv2.dnn.blobFromImagesWithParams(list(images), params)
    return blob


def _to_tensor_numpy(images: Sequence[np.ndarray], spec: ModelSpec) -> np.ndarray:
    batch = np.stack(images)
    if spec.channel_order == "rgb":
        batch = batch[..., ::-1]
    std = np.asarray(spec.std, dtype=np.float32)
    gain = np.float32(spec.scale) / std
    offset = -np.asarray(spec.mean, dtype=np.float32) / std
    tensor = batch.astype(np.float32) * gain + offset
    return np.ascontiguousarray(tensor.transpose(0, 3, 1, 2))


def preprocess(
    images: Sequence[np.ndarray], spec: ModelSpec
) -> list[tuple[np.ndarray, list[int], list[Placement]]]:
    """BGR images -> groups of (tensor [n, 3, h, w], indices into `images`, placements).

    Images whose model inputs have the same size share a group (always one group for a
    fixed-size model); each group holds at most `spec.max_batch` images.
    """
    groups: dict[tuple[int, int], tuple[list[np.ndarray], list[int], list[Placement]]] = {}
    for index, image in enumerate(images):
        fitted, placement = fit(as_bgr(image), spec)
        fitted_list, indices, placements = groups.setdefault(fitted.shape[:2], ([], [], []))
        fitted_list.append(fitted)
        indices.append(index)
        placements.append(placement)
    out = []
    for fitted_list, indices, placements in groups.values():
        for start in range(0, len(indices), spec.max_batch):
            end = start + spec.max_batch
            out.append((to_tensor(fitted_list[start:end], spec), indices[start:end], placements[start:end]))
    return out
