"""CTC text recognition: the class -> character table, and greedy decoding of [N, T, C] scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sluice.models.probabilities import as_probabilities
from sluice.models.spec import ModelSpec

BLANK = 0


def charset_from_metadata(metadata: Mapping[str, str], key: str) -> tuple[str, ...]:
    """The characters stored one per line under `key` in an ONNX file's metadata."""
    text = metadata.get(key)
    if text is None:
        raise ValueError(
            f"the model has no {key!r} metadata holding its characters; give ctc.charset in the spec"
        )
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(lines)


def class_table(charset: Sequence[str], num_classes: int) -> tuple[str, ...]:
    """Text of each output class: blank (''), then `charset`, then a space when the model has one
    class more (PP-OCR's layout: 6623 characters -> 6625 classes)."""
    if num_classes == len(charset) + 1:
        return ("", *charset)
    if num_classes == len(charset) + 2:
        return ("", *charset, " ")
    raise ValueError(
        f"the charset has {len(charset)} characters but the model outputs {num_classes} classes "
        f"(expected {len(charset) + 1}: blank + charset, or {len(charset) + 2}: blank + charset + space)"
    )


def spec_charset(spec: ModelSpec, metadata: Mapping[str, str]) -> tuple[str, ...]:
    """The spec's charset, or the one in the model's metadata when the spec gives none."""
    if spec.ctc.charset is not None:
        return spec.ctc.charset
    return charset_from_metadata(metadata, spec.ctc.metadata_key)


def ctc_greedy_decode(scores: np.ndarray, classes: Sequence[str]) -> list[tuple[str, float]]:
    """Scores [N, T, C] (probabilities or logits) -> (text, confidence) per row.

    The best class at each time step is kept when it differs from the step before and is not
    the blank; confidence is the mean probability of the kept steps (0.0 for empty text).
    """
    if scores.ndim != 3:
        raise ValueError(f"expected a [N, T, C] output, got shape {scores.shape}")
    if scores.shape[2] != len(classes):
        raise ValueError(f"output has {scores.shape[2]} classes, the class table {len(classes)}")
    probabilities = as_probabilities(scores)
    best = probabilities.argmax(axis=2)  # [N, T]
    best_prob = probabilities.max(axis=2)
    results = []
    for indices, probs in zip(best, best_prob, strict=True):
        keep = indices != BLANK
        keep[1:] &= indices[1:] != indices[:-1]
        text = "".join(classes[i] for i in indices[keep])
        results.append((text, float(probs[keep].mean()) if keep.any() else 0.0))
    return results
