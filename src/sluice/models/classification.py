"""Classification results: one class per image, with every class's probability."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sluice.models.probabilities import as_probabilities


@dataclass(frozen=True, eq=False)
class ClassificationResult:
    """The best class of one image; `scores` [C] holds every class's probability (sum 1)."""

    class_name: str
    class_id: int
    confidence: float
    scores: np.ndarray
    class_names: tuple[str, ...]

    def scores_by_name(self) -> dict[str, float]:
        return {name: float(p) for name, p in zip(self.class_names, self.scores, strict=True)}

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The `k` most probable classes, best first."""
        order = np.argsort(-self.scores, kind="stable")[:k]
        return [(self.class_names[i], float(self.scores[i])) for i in order]

    def to_dict(self) -> dict[str, Any]:
        """Roboflow's classification shape: top class, its confidence, and every class best first."""
        order = np.argsort(-self.scores, kind="stable")
        return {
            "top": self.class_name,
            "class_id": self.class_id,
            "confidence": self.confidence,
            "predictions": [
                {"class": self.class_names[i], "class_id": int(i), "confidence": float(self.scores[i])}
                for i in order
            ],
        }


def decode_classification(output: np.ndarray, class_names: Sequence[str]) -> list[ClassificationResult]:
    """Scores [N, C] (or [N, C, 1, 1]), probabilities or logits -> one result per image.

    A row that does not sum to 1 (or has a negative value) is taken for logits: softmax.
    """
    if output.ndim == 4 and output.shape[2:] == (1, 1):
        output = output[:, :, 0, 0]
    if output.ndim != 2:
        raise ValueError(f"expected a [N, C] classification output, got shape {output.shape}")
    if output.shape[1] != len(class_names):
        raise ValueError(f"output has {output.shape[1]} classes but the spec names {len(class_names)}")
    names = tuple(class_names)
    probabilities = as_probabilities(output)
    results = []
    for row in probabilities:
        best = int(row.argmax())
        results.append(ClassificationResult(names[best], best, float(row[best]), row, names))
    return results
