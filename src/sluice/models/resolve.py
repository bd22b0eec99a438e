"""What the runners share: a spec from an id, a task check, and the backend to run on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sluice.errors import InvalidArgument
from sluice.models.backends import InferenceBackend
from sluice.models.backends.current import get_backend
from sluice.models.backends.onnxruntime_backend import OnnxRuntimeBackend
from sluice.models.registry import get_model
from sluice.models.spec import ModelSpec


def resolve_spec(model: ModelSpec | str) -> ModelSpec:
    """`model` itself, or the registered spec of a model id (NotFound when unknown)."""
    return model if isinstance(model, ModelSpec) else get_model(model)


def require_task(spec: ModelSpec, tasks: tuple[str, ...], runner: str) -> None:
    if spec.task not in tasks:
        raise InvalidArgument(
            f"model {spec.model_id!r} is a {spec.task} model; a {runner} needs {' or '.join(tasks)}"
        )


def choose_backend(
    backend: InferenceBackend | None = None, intra_op_threads: int | None = None
) -> InferenceBackend:
    """`backend` when given, else the process's; `intra_op_threads` applies to ONNX Runtime only."""
    if backend is not None:
        return backend
    current = get_backend()
    if intra_op_threads is not None and current.name == OnnxRuntimeBackend.name:
        return OnnxRuntimeBackend(intra_op_threads)
    return current


Result = TypeVar("Result")


def every_result(results: Sequence[Result | None]) -> list[Result]:
    """The per-image results of a runner, in order; an image left without one is a bug, raised."""
    done = [r for r in results if r is not None]
    if len(done) != len(results):
        raise RuntimeError(f"{len(results) - len(done)} images were not run through the model")
    return done
