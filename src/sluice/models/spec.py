"""What a model needs around its ONNX file: task, input geometry, normalisation, classes, output layout.

One validated type, `ModelSpec`, describes every model Sluice runs; its task and output layout say
which runner (detector, classifier, recogniser) and which decoder apply. An invalid spec raises
`InvalidSpec` naming the field at fault (a `ValueError`, and an `InvalidArgument` for gRPC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sluice.errors import InvalidArgument

Task = Literal["object-detection", "classification", "ocr-detection", "ocr-recognition"]
OutputLayout = Literal["yolov8", "dbnet", "yolov8-cls", "orientation", "ctc"]
ResizeMode = Literal["letterbox", "resize", "center-crop", "fixed-height"]
ChannelOrder = Literal["rgb", "bgr"]

TASKS: tuple[Task, ...] = ("object-detection", "classification", "ocr-detection", "ocr-recognition")
LAYOUTS_BY_TASK: dict[str, tuple[OutputLayout, ...]] = {
    "object-detection": ("yolov8",),
    "classification": ("yolov8-cls", "orientation"),
    "ocr-detection": ("dbnet",),
    "ocr-recognition": ("ctc",),
}
"""The output layouts each task accepts; the first is the task's default."""
OUTPUT_LAYOUTS: tuple[OutputLayout, ...] = ("yolov8", "dbnet", "yolov8-cls", "orientation", "ctc")
RESIZE_MODES: tuple[ResizeMode, ...] = ("letterbox", "resize", "center-crop", "fixed-height")
RESIZES_BY_LAYOUT: dict[str, tuple[ResizeMode, ...]] = {
    "yolov8": ("letterbox", "resize"),
    "dbnet": ("resize", "letterbox"),
    "yolov8-cls": ("center-crop", "resize", "letterbox", "fixed-height"),
    "orientation": ("center-crop", "resize", "letterbox", "fixed-height"),
    "ctc": ("fixed-height",),
}
"""The resize modes each output layout accepts (detections need boxes mapped back to the image)."""
CHANNEL_ORDERS: tuple[ChannelOrder, ...] = ("rgb", "bgr")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class InvalidSpec(InvalidArgument, ValueError):
    """A model spec that cannot be used; the message names the field."""


def _fail(model_id: str, name: str, problem: str) -> InvalidSpec:
    return InvalidSpec(f"model spec {model_id!r}: field {name!r} {problem}")


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
class CTCParams:
    """Decoding a CTC text recogniser's output [N, T, C]: class 0 is the CTC blank.

    `charset` lists the characters of classes 1.. in order. None reads them from the ONNX file's
    metadata under `metadata_key`, one character per line (as PP-OCR exports do). The model may
    have one class more than blank + charset: PP-OCR appends a space as its last class.
    """

    charset: tuple[str, ...] | None = None
    metadata_key: str = "character"


@dataclass(frozen=True)
class ModelSpec:
    """A model's ONNX file plus its pre- and post-processing.

    `input_size` is (width, height) of the model input. For `letterbox` and `resize`, None means
    the model takes any size: the image is scaled so its longer side is `max_side` and each side
    is rounded to a multiple of `stride`. `center-crop` scales the image so the input covers
    `crop_fraction` of its shorter side, then cuts the centre. `fixed-height` (text lines) scales
    each image to the input height keeping its aspect ratio, at most `max_side` wide, and pads
    batches on the right to their widest image, at least `input_size[0]`.

    Pixels become `(pixel * scale - mean) / std` in `channel_order`.
    """

    model_id: str
    path: Path
    class_names: tuple[str, ...] = ()
    output_layout: OutputLayout = "yolov8"
    task: Task = "object-detection"
    input_size: tuple[int, int] | None = (640, 640)
    max_side: int = 960
    stride: int = 32
    resize_mode: ResizeMode = "letterbox"
    pad_value: int = 114
    crop_fraction: float = 0.875
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channel_order: ChannelOrder = "rgb"
    default_confidence: float = 0.4
    default_iou: float = 0.5
    max_batch: int = 8
    dbnet: DBNetParams = field(default_factory=DBNetParams)
    ctc: CTCParams = field(default_factory=CTCParams)

    def __post_init__(self) -> None:
        self._check_kind()
        self._check_class_names()
        self._check_geometry()
        self._check_values()

    def _fail(self, name: str, problem: str) -> InvalidSpec:
        return _fail(self.model_id, name, problem)

    def _check_kind(self) -> None:
        if self.task not in TASKS:
            raise self._fail("task", f"must be one of {', '.join(TASKS)}, not {self.task!r}")
        layouts = LAYOUTS_BY_TASK[self.task]
        if self.output_layout not in layouts:
            raise self._fail(
                "output_layout",
                f"{self.output_layout!r} does not fit task {self.task!r}: use {' or '.join(layouts)}",
            )
        resizes = RESIZES_BY_LAYOUT[self.output_layout]
        if self.resize_mode not in resizes:
            raise self._fail(
                "resize_mode",
                f"{self.resize_mode!r} does not fit output layout {self.output_layout!r}: "
                f"use {' or '.join(resizes)}",
            )
        if self.channel_order not in CHANNEL_ORDERS:
            raise self._fail("channel_order", f"must be rgb or bgr, not {self.channel_order!r}")

    def _check_class_names(self) -> None:
        names = self.class_names
        if any(not isinstance(n, str) or not n for n in names):
            raise self._fail("class_names", "must hold non-empty strings")
        if self.task in ("object-detection", "classification") and not names:
            raise self._fail("class_names", f"is empty: a {self.task} model needs its class names")
        if self.task == "ocr-detection" and len(names) != 1:
            raise self._fail("class_names", "must hold exactly one name (e.g. 'text') for ocr-detection")
        if self.task == "ocr-recognition" and names:
            raise self._fail("class_names", "must be empty for ocr-recognition (the charset is ctc.charset)")
        if self.output_layout == "orientation":
            for name in names:
                if not name.isdigit() or int(name) % 90 or int(name) >= 360:
                    raise self._fail(
                        "class_names",
                        f"of an orientation model must be clockwise degrees 0, 90, 180 or 270, not {name!r}",
                    )
        charset = self.ctc.charset
        if charset is not None and (not charset or any(not isinstance(c, str) or not c for c in charset)):
            raise self._fail("ctc.charset", "must be null (read from the model) or non-empty strings")

    def _check_geometry(self) -> None:
        size = self.input_size
        if size is not None and (len(size) != 2 or min(size) <= 0):
            raise self._fail("input_size", "must be [width, height] of positive integers")
        if size is None and self.resize_mode in ("center-crop", "fixed-height"):
            raise self._fail("input_size", f"is needed by resize_mode {self.resize_mode!r}")
        if self.stride <= 0 or self.max_side < self.stride:
            raise self._fail("stride", "must be positive and at most max_side")
        if self.resize_mode == "fixed-height" and size is not None and self.max_side < size[0]:
            raise self._fail("max_side", "(the widest text line) must be at least input_size's width")
        if not 0 < self.crop_fraction <= 1:
            raise self._fail("crop_fraction", "must be in (0, 1]")
        if self.max_batch <= 0:
            raise self._fail("max_batch", "must be positive")
        if not 0 <= self.pad_value <= 255:
            raise self._fail("pad_value", "must be a pixel value 0..255")

    def _check_values(self) -> None:
        if len(self.mean) != 3:
            raise self._fail("mean", "must hold three numbers")
        if len(self.std) != 3:
            raise self._fail("std", "must hold three numbers")
        if any(s == 0 for s in self.std):
            raise self._fail("std", "has a zero")
        if self.scale <= 0:
            raise self._fail("scale", "must be positive")
        if not 0 <= self.default_confidence <= 1:
            raise self._fail("default_confidence", "must be in [0, 1]")
        if not 0 <= self.default_iou <= 1:
            raise self._fail("default_iou", "must be in [0, 1]")
