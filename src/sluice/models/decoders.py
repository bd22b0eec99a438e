"""Raw model outputs -> `sv.Detections` in original-image coordinates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import cv2
import numpy as np
import supervision as sv

from sluice.models.preprocess import Placement
from sluice.models.spec import DBNetParams

CLASS_NAME = "class_name"


def empty_detections() -> sv.Detections:
    """No detections, with the same fields as a non-empty result."""
    return sv.Detections(
        xyxy=np.empty((0, 4), dtype=np.float32),
        confidence=np.empty(0, dtype=np.float32),
        class_id=np.empty(0, dtype=np.int64),
        data={CLASS_NAME: np.empty(0, dtype=str)},
    )


def select(detections: sv.Detections, which: np.ndarray) -> sv.Detections:
    """The detections picked by a boolean mask or index array [K]."""
    return cast(sv.Detections, detections[which])


def _detections(
    xyxy: np.ndarray, confidence: np.ndarray, class_id: np.ndarray, class_names: Sequence[str]
) -> sv.Detections:
    if len(xyxy) == 0:
        return empty_detections()
    names = np.asarray(class_names, dtype=str)[class_id]
    return sv.Detections(
        xyxy=xyxy.astype(np.float32),
        confidence=confidence.astype(np.float32),
        class_id=class_id.astype(np.int64),
        data={CLASS_NAME: names},
    )


def decode_yolov8(
    output: np.ndarray,
    placements: Sequence[Placement],
    class_names: Sequence[str],
    confidence: float,
    iou: float,
    max_detections: int = 300,
    class_agnostic: bool = False,
) -> list[sv.Detections]:
    """Decode a YOLOv8-layout output [N, 4 + C, A] (or [N, A, 4 + C]), one result per image.

    Each anchor holds a box (cx, cy, w, h in model-input pixels) and C class scores; an anchor
    keeps its best class when that score reaches `confidence`. Boxes are mapped to the original
    image with `placements[i]`, then non-maximum suppression runs per class (IoU > `iou` drops
    the weaker box), and the `max_detections` most confident remain.
    """
    num_channels = 4 + len(class_names)
    if output.ndim != 3:
        raise ValueError(f"expected a [N, 4 + C, A] output, got shape {output.shape}")
    if output.shape[1] != num_channels and output.shape[2] == num_channels:
        output = output.transpose(0, 2, 1)
    if output.shape[1] != num_channels:
        raise ValueError(
            f"output shape {output.shape} does not match {len(class_names)} classes "
            f"(expected [N, {num_channels}, anchors])"
        )
    if output.shape[0] != len(placements):
        raise ValueError(f"{output.shape[0]} outputs for {len(placements)} images")
    results = []
    for rows, placement in zip(output, placements, strict=True):
        scores = rows[4:]  # [C, A]
        class_id = scores.argmax(axis=0)
        best = scores[class_id, np.arange(scores.shape[1])]
        keep = best >= confidence
        if not keep.any():
            results.append(empty_detections())
            continue
        cx, cy, w, h = rows[:4, keep]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        detections = _detections(placement.to_original(boxes), best[keep], class_id[keep], class_names)
        detections = detections.with_nms(threshold=iou, class_agnostic=class_agnostic)
        if len(detections) > max_detections and detections.confidence is not None:
            order = np.argsort(-detections.confidence)[:max_detections]
            detections = select(detections, np.sort(order))
        results.append(detections)
    return results


def _region_score(prob: np.ndarray, corners: np.ndarray) -> float:
    """Mean of `prob` [H, W] inside the quadrilateral `corners` [4, 2]."""
    height, width = prob.shape
    x0 = int(np.clip(np.floor(corners[:, 0].min()), 0, width - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()), 0, width - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min()), 0, height - 1))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()), 0, height - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    shifted = (corners - np.array([x0, y0], dtype=np.float32)).round().astype(np.int32)
    cv2.fillPoly(mask, [shifted], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def _text_boxes(prob: np.ndarray, params: DBNetParams) -> tuple[np.ndarray, np.ndarray]:
    """Text regions of one probability map [H, W] -> (boxes [K, 4] xyxy, scores [K])."""
    binary = (prob > params.threshold).astype(np.uint8)
    bitmap = cv2.dilate(binary, np.ones((2, 2), dtype=np.uint8)) if params.dilate else binary
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes, scores = [], []
    for contour in contours[: params.max_candidates]:
        center, (rect_w, rect_h), angle = cv2.minAreaRect(contour)
        if min(rect_w, rect_h) < params.min_size:
            continue
        score = _region_score(prob, cv2.boxPoints((center, (rect_w, rect_h), angle)))
        if score < params.box_threshold:
            continue
        # The network predicts a shrunk text kernel; grow it back by a fixed offset on every side
        # (offsetting a rectangle by d grows both sides by 2d).
        offset = rect_w * rect_h * params.unclip_ratio / (2 * (rect_w + rect_h))
        grown = (rect_w + 2 * offset, rect_h + 2 * offset)
        if min(grown) < params.min_size + 2:
            continue
        corners = cv2.boxPoints((center, grown, angle))
        boxes.append([*corners.min(axis=0), *corners.max(axis=0)])
        scores.append(score)
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(scores, np.float32)


def decode_dbnet(
    prob: np.ndarray,
    placements: Sequence[Placement],
    params: DBNetParams,
    class_name: str = "text",
    confidence: float = 0.0,
) -> list[sv.Detections]:
    """Decode DBNet probability maps [N, 1, H, W] into axis-aligned text boxes per image.

    Pixels above `params.threshold` form regions; each region's minimum-area rectangle is kept
    when the mean probability inside it reaches both `params.box_threshold` and `confidence`,
    grown by the unclip offset, and mapped to the original image as an xyxy box of class 0.
    """
    if prob.ndim != 4 or prob.shape[1] != 1:
        raise ValueError(f"expected a [N, 1, H, W] probability map, got shape {prob.shape}")
    if prob.shape[0] != len(placements):
        raise ValueError(f"{prob.shape[0]} maps for {len(placements)} images")
    results = []
    for plane, placement in zip(prob[:, 0], placements, strict=True):
        boxes, scores = _text_boxes(plane.astype(np.float32, copy=False), params)
        keep = scores >= confidence
        boxes = placement.to_original(boxes[keep])
        scores = scores[keep]
        big_enough = ((boxes[:, 2] - boxes[:, 0]) > 3) & ((boxes[:, 3] - boxes[:, 1]) > 3)
        boxes, scores = boxes[big_enough], scores[big_enough]
        class_id = np.zeros(len(boxes), dtype=np.int64)
        results.append(_detections(boxes, scores, class_id, [class_name]))
    return results
