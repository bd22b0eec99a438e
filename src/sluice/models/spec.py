"""What a model needs around its ONNX file: input geometry, normalisation, classes, output layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

OutputLayout = Literal["yolov8", "dbnet"]
ResizeMode = Literal["letterbox", "resize"]
ChannelOrder = Literal["rgb", "bgr"]


@dataclass(frozen=True)
class DBNetParams:
    """Post-processing of a DBNet probability map (the PP-OCR text detector)."""

    threshold: float = 0.3
    """Pixel probability above which a pixel counts as text."""
    box_threshold: float = 0.5
    """Mean probability inside a region below which the region is dropped."""
    unclip_ratio: float = 1.6
    """How far a shrunk text kernel is grown back: offset = area * ratio / perimeter."""
    max_candidates: int = 1000
    min_size: float = 3.0
    """Shortest side (model-input pixels) of a region worth keeping."""
    dilate: bool = True
    """Dilate the binary map with a 2x2 kernel before finding contours."""


@dataclass(frozen=True)
class ModelSpec:
    """An object-detection model: its ONNX file plus its pre- and post-processing.

    `input_size` is (width, height) of a fixed model input. None means the model takes any size:
    the image is scaled so its longer side is `max_side` (up or down) and each side is rounded
    to a multiple of `stride`.
    """

    model_id: str
    path: Path
    class_names: tuple[str, ...]
    output_layout: OutputLayout = "yolov8"
    task: str = "object-detection"
    input_size: tuple[int, int] | None = (640, 640)
    max_side: int = 960
    stride: int = 32
    resize_mode: ResizeMode = "letterbox"
    pad_value: int = 114
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channel_order: ChannelOrder = "rgb"
    default_confidence: float = 0.4
    default_iou: float = 0.5
    max_batch: int = 8
    dbnet: DBNetParams = field(default_factory=DBNetParams)

    def __post_init__(self) -> None:
        if not self.class_names:
            raise ValueError(f"model {self.model_id!r}: class_names is empty")
        if any(s == 0 for s in self.std):
            raise ValueError(f"model {self.model_id!r}: std has a zero")
        if self.input_size is not None and min(self.input_size) <= 0:
            raise ValueError(f"model {self.model_id!r}: input_size must be positive")
        if self.stride <= 0 or self.max_side < self.stride:
            raise ValueError(f"model {self.model_id!r}: need 0 < stride <= max_side")
        if self.max_batch <= 0:
            raise ValueError(f"model {self.model_id!r}: max_batch must be positive")
