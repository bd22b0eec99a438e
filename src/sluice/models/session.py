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
_by_given: dict[tuple[str, int | None], ort.InferenceSession] = {}
_input_names: dict[int, str] = {}
"""By id(session): sessions are never dropped, so an id is never reused for another."""


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
    given = (str(path), intra_op_threads)
    session = _by_given.get(given)  # the path as given: no resolve() per model call
    if session is not None:
        return session
    key = (str(Path(path).resolve()), intra_op_threads)
    with _lock:
        session = _sessions.get(key)
        if session is None:
            session = _create(key[0], intra_op_threads)
            _sessions[key] = session
        _by_given[given] = session
        return session


def input_name(session: ort.InferenceSession) -> str:
    """The name of the session's first input (looked up once per session)."""
    name = _input_names.get(id(session))
    if name is None:
        name = session.get_inputs()[0].name
        _input_names[id(session)] = name
    return name
