"""What an ONNX file declares: its inputs, outputs and metadata, read through ONNX Runtime.

The file is loaded into a short-lived session with graph optimisation off (reading, not running),
so this works in any process, whichever backend runs the model there.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

Dim = int | str | None
"""A dimension: a size, a symbolic name, or None when unnamed and dynamic."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[Dim, ...]
    element_type: str
    """ONNX Runtime's type name, e.g. 'tensor(float)'."""

    def static(self, axis: int) -> int | None:
        """The fixed size of `axis`, or None when it is dynamic."""
        dim = self.shape[axis]
        return dim if isinstance(dim, int) and dim > 0 else None

    def describe(self) -> str:
        dims = ", ".join(str(d) if isinstance(d, int) and d > 0 else "?" for d in self.shape)
        return f"{self.name} [{dims}]"


@dataclass(frozen=True)
class ModelInfo:
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    metadata: Mapping[str, str]
    """The ONNX file's metadata_props (e.g. PP-OCR's 'character' list)."""


def _tensors(args: list[ort.NodeArg]) -> tuple[TensorInfo, ...]:
    return tuple(TensorInfo(a.name, tuple(a.shape or ()), a.type) for a in args)


def inspect_model(path: Path | str) -> ModelInfo:
    """Load the ONNX file at `path`; raises whatever ONNX Runtime raises for a bad file."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return ModelInfo(
        _tensors(session.get_inputs()),
        _tensors(session.get_outputs()),
        dict(session.get_modelmeta().custom_metadata_map),
    )


_lock = threading.Lock()
_metadata: dict[tuple[str, int, int], Mapping[str, str]] = {}


def model_metadata(path: Path | str) -> Mapping[str, str]:
    """The metadata of the ONNX file at `path`, read once per file version per process."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_mtime_ns, stat.st_size)
    with _lock:
        found = _metadata.get(key)
    if found is None:
        found = inspect_model(resolved).metadata
        with _lock:
            _metadata[key] = found
    return found
