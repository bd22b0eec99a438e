"""Running a CTC text recogniser over text-line crops: fixed-height batches -> backend -> decode."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from sluice.models.backends import InferenceBackend
from sluice.models.ctc import class_table, ctc_greedy_decode, spec_charset
from sluice.models.model_info import model_metadata
from sluice.models.preprocess import as_bgr
from sluice.models.resolve import choose_backend, require_task, resolve_spec
from sluice.models.spec import ModelSpec
from sluice.models.text_lines import line_batches


class Recognizer:
    """A text recogniser (ctc layout) ready to run; thread-safe.

    The charset comes from the spec, else from the ONNX file's metadata, read on first use.
    """

    def __init__(self, spec: ModelSpec, backend: InferenceBackend | None = None) -> None:
        require_task(spec, ("ocr-recognition",), "recognizer")
        self.spec = spec
        self.backend = choose_backend(backend)
        self._lock = threading.Lock()
        self._classes: tuple[str, ...] | None = None

    def _class_table(self, num_classes: int) -> tuple[str, ...]:
        with self._lock:
            if self._classes is None or len(self._classes) != num_classes:
                metadata = {} if self.spec.ctc.charset is not None else model_metadata(self.spec.path)
                charset = spec_charset(self.spec, metadata)
                self._classes = class_table(charset, num_classes)
            return self._classes

    def recognize(self, images: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """BGR uint8 crops [h, w, 3] of one text line each -> (text, confidence) per crop.

        Confidence is the mean probability of the characters read; an empty crop gives ("", 0.0).
        """
        results: list[tuple[str, float]] = [("", 0.0)] * len(images)
        present = [i for i, image in enumerate(images) if image.shape[0] > 0 and image.shape[1] > 0]
        crops = [as_bgr(images[i]) for i in present]
        for tensor, indices in line_batches(crops, self.spec):
            output = self.backend.run(self.spec, tensor)[0]
            if output.ndim != 3:
                raise ValueError(f"model {self.spec.model_id!r}: expected [N, T, C], got {output.shape}")
            decoded = ctc_greedy_decode(output, self._class_table(output.shape[2]))
            for index, text in zip(indices, decoded, strict=True):
                results[present[index]] = text
        return results


def load_recognizer(
    model: ModelSpec | str,
    intra_op_threads: int | None = None,
    *,
    backend: InferenceBackend | None = None,
) -> Recognizer:
    """A recogniser for a spec or a registered model id, on `backend` or the process's backend."""
    return Recognizer(resolve_spec(model), choose_backend(backend, intra_op_threads))
