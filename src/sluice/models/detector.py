"""Running a detection model over a batch of images: preprocess -> session.run -> decode."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import onnxruntime as ort
import supervision as sv

from sluice.models.decoders import decode_dbnet, decode_yolov8
from sluice.models.preprocess import preprocess
from sluice.models.registry import get_model
from sluice.models.session import load_session
from sluice.models.spec import ModelSpec


class Detector:
    """An object-detection model ready to run; safe to share between threads."""

    def __init__(self, spec: ModelSpec, session: ort.InferenceSession) -> None:
        self.spec = spec
        self._session = session
        model_input = session.get_inputs()[0]
        self._input_name = model_input.name
        batch_dim = model_input.shape[0] if model_input.shape else None
        fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        self._max_batch = min(spec.max_batch, fixed_batch or spec.max_batch)

    def detect(
        self,
        images: Sequence[np.ndarray],
        confidence: float | None = None,
        iou: float | None = None,
        max_detections: int = 300,
        class_agnostic: bool = False,
    ) -> list[sv.Detections]:
        """BGR uint8 images [H, W, 3] (gray and BGRA accepted) -> one `sv.Detections` each.

        Boxes are xyxy in each image's own pixels; `data["class_name"]` holds class names.
        """
        spec = self.spec
        conf = spec.default_confidence if confidence is None else confidence
        iou_threshold = spec.default_iou if iou is None else iou
        results: list[sv.Detections | None] = [None] * len(images)
        for tensor, indices, placements in preprocess(images, spec):
            for start in range(0, len(indices), self._max_batch):
                end = start + self._max_batch
                (output,) = self._session.run(None, {self._input_name: tensor[start:end]})[:1]
                if spec.output_layout == "dbnet":
                    decoded = decode_dbnet(
                        output, placements[start:end], spec.dbnet, spec.class_names[0], conf
                    )
                else:
                    decoded = decode_yolov8(
                        output,
                        placements[start:end],
                        spec.class_names,
                        conf,
                        iou_threshold,
                        max_detections,
                        class_agnostic,
                    )
                for index, detections in zip(indices[start:end], decoded, strict=True):
                    results[index] = detections
        done = [r for r in results if r is not None]
        if len(done) != len(images):
            raise RuntimeError(f"{len(images) - len(done)} images were not run through the model")
        return done


_lock = threading.Lock()
_detectors: dict[tuple[str, int | None], Detector] = {}


def load_detector(model_id: str, intra_op_threads: int | None = None) -> Detector:
    """The process-wide detector for a registered model id (loaded on first use)."""
    spec = get_model(model_id)
    key = (model_id, intra_op_threads)
    with _lock:
        detector = _detectors.get(key)
        if detector is None or detector.spec is not spec:
            detector = Detector(spec, load_session(spec.path, intra_op_threads))
            _detectors[key] = detector
        return detector
