"""Where a model's forward pass runs: ONNX Runtime in-process, or a Triton Inference Server.

Pre- and post-processing stay in the caller (the same numpy code for every backend); a backend
only maps a model-ready input batch to the model's raw outputs, so the same model id gives the
same predictions on either.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from sluice.models.spec import ModelSpec


class InferenceBackend(Protocol):
    """Runs a model's forward pass on a batch."""

    name: str

    def run(self, spec: ModelSpec, batch: np.ndarray) -> list[np.ndarray]:
        """`batch` is the model's first input, [N, ...] float32; returns every output, in order."""
        ...
