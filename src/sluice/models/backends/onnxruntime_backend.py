"""ONNX Runtime in-process: the embedded default backend."""

from __future__ import annotations

import numpy as np

from sluice.models.session import input_name, load_session
from sluice.models.spec import ModelSpec


class OnnxRuntimeBackend:
    """Runs each model with the process-wide ORT session for its file (shared by task slots)."""

    name = "onnxruntime"

    def __init__(self, intra_op_threads: int | None = None) -> None:
        self.intra_op_threads = intra_op_threads

    def run(self, spec: ModelSpec, batch: np.ndarray) -> list[np.ndarray]:
        session = load_session(spec.path, self.intra_op_threads)
        return [np.asarray(out) for out in session.run(None, {input_name(session): batch})]
