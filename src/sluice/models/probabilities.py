"""Scores that may be probabilities or logits -> probabilities."""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-3


def as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Scores [..., C] -> float32 probabilities [..., C] summing to 1 over the last axis.

    A row that already is a distribution (no negative value, sum within 1e-3 of 1) is kept as
    it is; any other row is taken for logits and goes through a softmax.
    """
    values = np.asarray(scores, dtype=np.float32)
    if values.shape[-1] == 0:
        raise ValueError("scores have no classes")
    sums = values.sum(axis=-1, keepdims=True)
    is_distribution = (np.abs(sums - 1) <= TOLERANCE) & (values.min(axis=-1, keepdims=True) >= 0)
    if is_distribution.all():
        return values
    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    softmax = shifted / shifted.sum(axis=-1, keepdims=True)
    return np.where(is_distribution, values, softmax).astype(np.float32)
