"""ONNX Runtime sessions: one per (model file, thread count) per process, shared by task slots.

`InferenceSession.run` is thread-safe, so the slots of a worker share a session instead of
each holding its own copy of the weights.
"""

from __future__ import annotations

import threading
from pathlib import Path

import onnxruntime as ort

_lock = threading.Lock()
_sessions: dict[tuple[str, int | None], ort.InferenceSession] = {}


def _create(path: str, intra_op_threads: int | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # Spinning intra-op threads starve image decoding running beside them (see MODELS.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def load_session(path: str | Path, intra_op_threads: int | None = None) -> ort.InferenceSession:
    """The process-wide session for `path` (created on first use; thread-safe)."""
    if intra_op_threads is not None and intra_op_threads < 1:
        raise ValueError("intra_op_threads must be at least 1")
    key = (str(Path(path).resolve()), intra_op_threads)
    with _lock:
        session = _sessions.get(key)
        if session is None:
            session = _create(key[0], intra_op_threads)
            _sessions[key] = session
        return session
