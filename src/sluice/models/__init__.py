"""Models: specs by id, pre- and post-processing, and runners whose forward pass is the backend's.

Runners: `load_detector` (object and text detection -> `sv.Detections`), `load_classifier`
(-> `ClassificationResult`) and `load_recognizer` (text-line crops -> (text, confidence)).
"""

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
