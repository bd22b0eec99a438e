"""Triton model repositories for Sluice models: one folder per model, named from its id.

`<target>/<triton name>/config.pbtxt` and `<target>/<triton name>/1/` holding the ONNX file.
Two kinds:

- "python-onnxruntime": Triton's python backend runs `model.py` (a copy of
  `sluice/models/triton_python_model.py`), which runs the ONNX file with ONNX Runtime on CPU.
  Any Triton build with the python backend serves it (the `nvidia-pytriton` wheel's among them).
- "onnxruntime": Triton's own ONNX Runtime backend serves `model.onnx` (a GPU fleet's Triton
  image; the instance kind is left to the server: GPUs when it has them, else CPU).

Both use dynamic batching, so the requests of many workers can share one model call.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sluice.errors import InvalidArgument, NotFound
from sluice.models.backends.triton_backend import triton_model_name
from sluice.models.model_info import TensorInfo, inspect_model
from sluice.models.spec import ModelSpec

RepositoryKind = Literal["python-onnxruntime", "onnxruntime"]
KINDS: tuple[RepositoryKind, ...] = ("python-onnxruntime", "onnxruntime")
VERSION = "1"
PYTHON_MODEL = Path(__file__).with_name("triton_python_model.py")

_TRITON_TYPES = {
    "tensor(float)": "TYPE_FP32",
    "tensor(float16)": "TYPE_FP16",
    "tensor(double)": "TYPE_FP64",
    "tensor(int8)": "TYPE_INT8",
    "tensor(int16)": "TYPE_INT16",
    "tensor(int32)": "TYPE_INT32",
    "tensor(int64)": "TYPE_INT64",
    "tensor(uint8)": "TYPE_UINT8",
    "tensor(bool)": "TYPE_BOOL",
    "tensor(string)": "TYPE_STRING",
}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of an ONNX file; `shape` has -1 for every dimension that varies."""

    name: str
    data_type: str
    shape: tuple[int, ...]


def read_io(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The inputs and outputs of an ONNX file, with Triton's type names."""
    try:
        info = inspect_model(path)
    except Exception as error:
        raise InvalidArgument(f"cannot read ONNX file {path}: {error}") from None

    def tensors(items: tuple[TensorInfo, ...]) -> list[TensorSpec]:
        found = []
        for item in items:
            data_type = _TRITON_TYPES.get(item.element_type)
            if data_type is None:
                raise InvalidArgument(
                    f"ONNX file {path}: {item.name} has type {item.element_type}, not served"
                )
            shape = tuple(item.static(axis) or -1 for axis in range(len(item.shape)))
            found.append(TensorSpec(item.name, data_type, shape))
        return found

    return tensors(info.inputs), tensors(info.outputs)


def _dims(shape: tuple[int, ...]) -> str:
    return "[ " + ", ".join(str(d) for d in shape) + " ]"


def _tensors(label: str, tensors: list[TensorSpec], batched: bool) -> str:
    entries = []
    for tensor in tensors:
        dims = tensor.shape[1:] if batched else tensor.shape
        entries.append(
            "  {\n"
            f'    name: "{tensor.name}"\n'
            f"    data_type: {tensor.data_type}\n"
            f"    dims: {_dims(dims or (1,))}\n"
            "  }"
        )
    return f"{label} [\n" + ",\n".join(entries) + "\n]\n"


def model_config(
    spec: ModelSpec,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    kind: RepositoryKind,
    onnx_file: str,
    execution_env: str | None = None,
) -> str:
    """The config.pbtxt text of one model.

    A model whose batch dimension varies batches up to `spec.max_batch` items per call; one with
    a fixed batch dimension does not batch (max_batch_size 0, full shapes).
    """
    if len(inputs) != 1:
        raise InvalidArgument(
            f"model {spec.model_id!r} has {len(inputs)} inputs; Sluice serves models with one image input"
        )
    if not inputs[0].shape:
        raise InvalidArgument(f"model {spec.model_id!r}: its input has no batch dimension")
    batched = inputs[0].shape[0] == -1
    lines = [f'name: "{triton_model_name(spec.model_id)}"\n']
    lines.append('backend: "python"\n' if kind == "python-onnxruntime" else 'backend: "onnxruntime"\n')
    lines.append(f"max_batch_size: {spec.max_batch if batched else 0}\n")
    lines.append(_tensors("input", inputs, batched))
    lines.append(_tensors("output", outputs, batched))
    if batched:
        lines.append("dynamic_batching {}\n")
    if kind == "python-onnxruntime":
        lines.append("instance_group [\n  {\n    count: 1\n    kind: KIND_CPU\n  }\n]\n")
        parameters = {"onnx_file": onnx_file}
        if execution_env:
            parameters["EXECUTION_ENV_PATH"] = execution_env
        for key, value in parameters.items():
            lines.append(f'parameters: {{\n  key: "{key}"\n  value: {{ string_value: "{value}" }}\n}}\n')
    else:
        lines.append("instance_group [\n  {\n    count: 1\n    kind: KIND_AUTO\n  }\n]\n")
        lines.append('default_model_filename: "model.onnx"\n')
    return "".join(lines)


def write_repository(
    specs: list[ModelSpec],
    target: Path,
    kind: RepositoryKind = "python-onnxruntime",
    execution_env: str | None = None,
) -> list[Path]:
    """Write one Triton model folder per spec under `target`; returns the folders written.

    A folder already there for the same model is replaced. `execution_env` (python kind only)
    is a Python environment folder (or packed .tar.gz) the server runs `model.py` in: it needs
    numpy<2 and onnxruntime.
    """
    if kind not in KINDS:
        raise InvalidArgument(f"unknown Triton repository kind {kind!r}; use one of {', '.join(KINDS)}")
    if execution_env and kind != "python-onnxruntime":
        raise InvalidArgument("an execution environment applies to the python-onnxruntime kind only")
    names = [triton_model_name(spec.model_id) for spec in specs]
    if len(set(names)) != len(names):
        raise InvalidArgument("a model id is given twice")
    written = []
    target.mkdir(parents=True, exist_ok=True)
    for spec, name in zip(specs, names, strict=True):
        source = Path(spec.path)
        if not source.is_file():
            raise NotFound(f"model {spec.model_id!r}: ONNX file {source} is missing")
        inputs, outputs = read_io(source)
        onnx_file = source.name if kind == "python-onnxruntime" else "model.onnx"
        if onnx_file == "model.py":
            onnx_file = "model.onnx"
        config = model_config(spec, inputs, outputs, kind, onnx_file, execution_env)
        folder = target / name
        if folder.exists():
            shutil.rmtree(folder)
        version = folder / VERSION
        version.mkdir(parents=True)
        shutil.copyfile(source, version / onnx_file)
        if kind == "python-onnxruntime":
            shutil.copyfile(PYTHON_MODEL, version / "model.py")
        (folder / "config.pbtxt").write_text(config)
        written.append(folder)
    return written
