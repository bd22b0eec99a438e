"""Models: specs by id, pre- and post-processing, and runners whose forward pass is the backend's.

Runners: `load_detector` (object and text detection -> `sv.Detections`), `load_classifier`
(-> `ClassificationResult`) and `load_recognizer` (text-line crops -> (text, confidence)).

The names below are imported from their submodules on first use (PEP 562), so importing a light
submodule such as `sluice.models.model_ids` (the CLI does) does not import NumPy, OpenCV,
supervision or ONNX Runtime.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sluice.models.catalog import BuiltinCatalog, MappingCatalog, ModelCatalog
    from sluice.models.classification import ClassificationResult, decode_classification
    from sluice.models.classifier import Classifier, load_classifier
    from sluice.models.ctc import ctc_greedy_decode
    from sluice.models.decoders import decode_dbnet, decode_yolov8
    from sluice.models.detector import Detector, load_detector
    from sluice.models.model_ids import validate_model_id
    from sluice.models.orientation import rotation_degrees, upright
    from sluice.models.preprocess import Placement, fit, preprocess, to_tensor
    from sluice.models.recognizer import Recognizer, load_recognizer
    from sluice.models.references import referenced_model_ids
    from sluice.models.registry import (
        BUILT_IN_IDS,
        ORIENTATION,
        TEXT_ANGLE,
        TEXT_DETECTOR,
        TEXT_RECOGNIZER,
        get_model,
        is_built_in,
        is_known,
        known_models,
        register_model,
    )
    from sluice.models.session import load_session
    from sluice.models.spec import CTCParams, DBNetParams, InvalidSpec, ModelSpec
    from sluice.models.spec_json import spec_from_dict, spec_from_json, spec_to_dict, spec_to_json
    from sluice.models.store_catalog import StoreCatalog

# Each public name and the submodule that defines it.
_SUBMODULES: dict[str, tuple[str, ...]] = {
    "catalog": ("BuiltinCatalog", "MappingCatalog", "ModelCatalog"),
    "classification": ("ClassificationResult", "decode_classification"),
    "classifier": ("Classifier", "load_classifier"),
    "ctc": ("ctc_greedy_decode",),
    "decoders": ("decode_dbnet", "decode_yolov8"),
    "detector": ("Detector", "load_detector"),
    "model_ids": ("validate_model_id",),
    "orientation": ("rotation_degrees", "upright"),
    "preprocess": ("Placement", "fit", "preprocess", "to_tensor"),
    "recognizer": ("Recognizer", "load_recognizer"),
    "references": ("referenced_model_ids",),
    "registry": (
        "BUILT_IN_IDS",
        "ORIENTATION",
        "TEXT_ANGLE",
        "TEXT_DETECTOR",
        "TEXT_RECOGNIZER",
        "get_model",
        "is_built_in",
        "is_known",
        "known_models",
        "register_model",
    ),
    "session": ("load_session",),
    "spec": ("CTCParams", "DBNetParams", "InvalidSpec", "ModelSpec"),
    "spec_json": ("spec_from_dict", "spec_from_json", "spec_to_dict", "spec_to_json"),
    "store_catalog": ("StoreCatalog",),
}
_HOME = {name: module for module, names in _SUBMODULES.items() for name in names}

__all__ = [
    "BUILT_IN_IDS",
    "ORIENTATION",
    "TEXT_ANGLE",
    "TEXT_DETECTOR",
    "TEXT_RECOGNIZER",
    "BuiltinCatalog",
    "CTCParams",
    "ClassificationResult",
    "Classifier",
    "DBNetParams",
    "Detector",
    "InvalidSpec",
    "MappingCatalog",
    "ModelCatalog",
    "ModelSpec",
    "Placement",
    "Recognizer",
    "StoreCatalog",
    "ctc_greedy_decode",
    "decode_classification",
    "decode_dbnet",
    "decode_yolov8",
    "fit",
    "get_model",
    "is_built_in",
    "is_known",
    "known_models",
    "load_classifier",
    "load_detector",
    "load_recognizer",
    "load_session",
    "preprocess",
    "referenced_model_ids",
    "register_model",
    "rotation_degrees",
    "spec_from_dict",
    "spec_from_json",
    "spec_to_dict",
    "spec_to_json",
    "to_tensor",
    "upright",
    "validate_model_id",
]


# Public names that are also a submodule's name: importing the submodule must not rebind them.
_SUBMODULE_NAMED = frozenset(_HOME) & frozenset(_SUBMODULES)


class _Package(types.ModuleType):
    """This package's module type: when `sluice.models.preprocess` (the submodule) is imported,
    the package's `preprocess` stays the function, as it was when this file imported it eagerly."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SUBMODULE_NAMED and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
