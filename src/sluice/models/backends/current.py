"""The backend a process uses unless a caller passes one: ONNX Runtime, or what the worker set."""

from __future__ import annotations

import threading

from sluice.models.backends import InferenceBackend
from sluice.models.backends.onnxruntime_backend import OnnxRuntimeBackend

_lock = threading.Lock()
_current: InferenceBackend | None = None


def get_backend() -> InferenceBackend:
    global _current
    with _lock:
        if _current is None:
            _current = OnnxRuntimeBackend()
        return _current


def set_backend(backend: InferenceBackend) -> None:
    """Choose the backend for this process (the worker does, from its options)."""
    global _current
    with _lock:
        _current = backend


def reset_backend() -> None:
    """Back to the default (ONNX Runtime, created on next use): tests, a process reconfigured."""
    global _current
    with _lock:
        _current = None
