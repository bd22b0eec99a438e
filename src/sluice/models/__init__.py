"""Detection models on ONNX Runtime: specs by id, sessions, pre- and post-processing."""

from sluice.models.decoders import decode_dbnet, decode_yolov8
from sluice.models.detector import Detector, load_detector
from sluice.models.preprocess import Placement, fit, preprocess, to_tensor
from sluice.models.registry import TEXT_DETECTOR, get_model, is_known, known_models, register_model
from sluice.models.session import load_session
from sluice.models.spec import DBNetParams, ModelSpec

__all__ = [
    "TEXT_DETECTOR",
    "DBNetParams",
    "Detector",
    "ModelSpec",
    "Placement",
    "decode_dbnet",
    "decode_yolov8",
    "fit",
    "get_model",
    "is_known",
    "known_models",
    "load_detector",
    "load_session",
    "preprocess",
    "register_model",
    "to_tensor",
]
