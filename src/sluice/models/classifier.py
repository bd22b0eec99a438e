"""Running a classification model over a batch of images: preprocess -> backend -> decode."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from sluice.models.backends import InferenceBackend
from sluice.models.classification import ClassificationResult, decode_classification
from sluice.models.preprocess import as_bgr, preprocess
from sluice.models.resolve import choose_backend, every_result, require_task, resolve_spec
from sluice.models.spec import ModelSpec
from sluice.models.text_lines import line_batches


class Classifier:
    """A classification model (yolov8-cls or orientation layout) ready to run; thread-safe."""

    def __init__(self, spec: ModelSpec, backend: InferenceBackend | None = None) -> None:
        require_task(spec, ("classification",), "classifier")
        self.spec = spec
        self.backend = choose_backend(backend)

    def _batches(self, images: Sequence[np.ndarray]) -> Iterator[tuple[np.ndarray, list[int]]]:
        if self.spec.resize_mode == "fixed-height":
            yield from line_batches([as_bgr(image) for image in images], self.spec)
            return
        for tensor, indices, _ in preprocess(images, self.spec):
            yield tensor, indices

    def classify(self, images: Sequence[np.ndarray]) -> list[ClassificationResult]:
        """BGR uint8 images [H, W, 3] (gray and BGRA accepted) -> one result each, in order."""
        results: list[ClassificationResult | None] = [None] * len(images)
        for tensor, indices in self._batches(images):
            output = self.backend.run(self.spec, tensor)[0]
            decoded = decode_classification(output, self.spec.class_names)
            for index, result in zip(indices, decoded, strict=True):
                results[index] = result
        return every_result(results)


def load_classifier(
    model: ModelSpec | str,
    intra_op_threads: int | None = None,
    *,
    backend: InferenceBackend | None = None,
) -> Classifier:
    """A classifier for a spec or a registered model id, on `backend` or the process's backend."""
    return Classifier(resolve_spec(model), choose_backend(backend, intra_op_threads))
