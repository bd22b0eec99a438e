"""Running a detection model over a batch of images: preprocess -> backend -> decode."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import supervision as sv

from sluice.models.backends import InferenceBackend
from sluice.models.decoders import decode_dbnet, decode_yolov8
from sluice.models.preprocess import preprocess
from sluice.models.resolve import choose_backend, every_result, require_task, resolve_spec
from sluice.models.spec import ModelSpec

DETECTION_TASKS = ("object-detection", "ocr-detection")


class Detector:
    """An object or text detection model ready to run; safe to share between threads."""

    def __init__(self, spec: ModelSpec, backend: InferenceBackend | None = None) -> None:
        require_task(spec, DETECTION_TASKS, "detector")
        self.spec = spec
        self.backend = choose_backend(backend)

    def detect(
        self,
        images: Sequence[np.ndarray],
        confidence: float | None = None,
        iou: float | None = None,
        max_detections: int = 300,
        class_agnostic: bool = False,
    ) -> list[sv.Detections]:
        """BGR uint8 images [H, W, 3] (gray and BGRA accepted) -> one `sv.Detections` each.

        Boxes are xyxy [K, 4] in each image's own pixels; `data["class_name"]` holds class names.
        """
        spec = self.spec
        conf = spec.default_confidence if confidence is None else confidence
        iou_threshold = spec.default_iou if iou is None else iou
        results: list[sv.Detections | None] = [None] * len(images)
        for tensor, indices, placements in preprocess(images, spec):
            output = self.backend.run(spec, tensor)[0]
            if spec.output_layout == "dbnet":
                decoded = decode_dbnet(output, placements, spec.dbnet, spec.class_names[0], conf)
            else:
                decoded = decode_yolov8(
                    output, placements, spec.class_names, conf, iou_threshold, max_detections, class_agnostic
                )
            for index, detections in zip(indices, decoded, strict=True):
                results[index] = detections
        return every_result(results)


def load_detector(
    model: ModelSpec | str,
    intra_op_threads: int | None = None,
    *,
    backend: InferenceBackend | None = None,
) -> Detector:
    """A detector for a spec or a registered model id, on `backend` or the process's backend.

    `intra_op_threads` sets ONNX Runtime's thread count when the process runs models on it.
    """
    return Detector(resolve_spec(model), choose_backend(backend, intra_op_threads))
