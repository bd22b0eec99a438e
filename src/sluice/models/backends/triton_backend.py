"""Triton Inference Server over gRPC: the backend of a worker pool configured with a Triton address.

The server holds the models (a repository written by `sluice models export-triton`) under names
derived from the model ids (`triton_model_name`). Input and output names, the input's data type
and the largest batch the model takes are read from the server once per model and cached. The
server's dynamic batcher may merge requests of several workers into one model call.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from sluice.errors import FailedPrecondition, InvalidArgument, NotFound, SluiceError, Unavailable
from sluice.models.spec import ModelSpec

DEFAULT_TIMEOUT_S = 60.0

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_NUMPY_TYPES: dict[str, type[np.generic]] = {
    "FP32": np.float32,
    "FP16": np.float16,
    "FP64": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "BOOL": np.bool_,
}


def triton_model_name(model_id: str) -> str:
    """The name a model id has in a Triton repository (a folder name): '/' becomes '--'.

    'sluice/text-detector' -> 'sluice--text-detector'. An id the plain rule could confuse with
    another (one holding '--' or characters other than letters, digits, '_', '.', '-' and '/')
    gets a short digest of the id appended, so two ids never share a name.
    """
    if not model_id:
        raise InvalidArgument("a model id is empty")
    name = _SAFE.sub("_", model_id.replace("/", "--"))
    plain = "--" not in model_id and not _SAFE.search(model_id.replace("/", ""))
    if not plain or name.startswith("."):
        name = f"{name.lstrip('.')}-{hashlib.sha256(model_id.encode()).hexdigest()[:8]}"
    return name


@dataclass(frozen=True)
class TritonModelInfo:
    """What the client needs to know about a model the server holds."""

    name: str
    input_name: str
    input_datatype: str
    output_names: tuple[str, ...]
    max_batch_size: int
    """The most items one request may carry; 0 means the model does not batch."""
    fixed_batch: int | None = None
    """For a model that does not batch: the fixed first dimension of its input, if any."""

    @property
    def step(self) -> int | None:
        """Items per request: None sends a batch whole."""
        return self.max_batch_size if self.max_batch_size > 0 else self.fixed_batch


class TritonBackend:
    """Runs models on a Triton Inference Server through tritonclient gRPC.

    Safe to share between threads: tritonclient's gRPC client is thread-safe for unary calls,
    and the per-model information is cached under a lock.
    """

    name = "triton"

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if not url or "://" in url:
            raise InvalidArgument(f"Triton address must be host:port, not {url!r}")
        if timeout_s <= 0:
            raise InvalidArgument("Triton timeout must be positive")
        self.url = url
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._client: Any = None
        self._models: dict[str, TritonModelInfo] = {}

    def _connect(self) -> Any:
        with self._lock:
            if self._client is None:
                import tritonclient.grpc as grpcclient

                self._client = grpcclient.InferenceServerClient(self.url)
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._models.clear()
        if client is not None:
            client.close()

    def _fail(self, error: Exception, model_name: str) -> NoReturn:
        """Raise the SluiceError for a tritonclient error, naming the server and the model."""
        status = str(getattr(error, "status", lambda: "")() or "").rsplit(".", 1)[-1]
        detail = str(getattr(error, "message", lambda: "")() or error)
        server = f"Triton server {self.url}"
        model = f"model {model_name!r} on {server}"
        if status == "UNAVAILABLE" and "connect" in detail.lower():
            raise Unavailable(f"{server} is unreachable: {detail}") from None
        if status == "UNAVAILABLE":
            raise Unavailable(f"{model} is not available: {detail}") from None
        if status == "DEADLINE_EXCEEDED":
            raise Unavailable(f"{model} did not answer within {self.timeout_s:g} s") from None
        if status == "NOT_FOUND":
            raise NotFound(
                f"{server} has no model {model_name!r} (export it with 'sluice models export-triton'): "
                f"{detail}"
            ) from None
        if status == "INVALID_ARGUMENT":  # the served model does not fit its spec: not the caller's input
            raise FailedPrecondition(f"{model} refused the request: {detail}") from None
        raise SluiceError(f"{model} failed ({status or 'error'}): {detail}") from None

    def model_info(self, model_id: str) -> TritonModelInfo:
        """The server's metadata and batching limit for `model_id` (fetched once, then cached)."""
        from tritonclient.utils import InferenceServerException

        model_name = triton_model_name(model_id)
        with self._lock:
            cached = self._models.get(model_name)
        if cached is not None:
            return cached
        client = self._connect()
        try:
            metadata = client.get_model_metadata(model_name, as_json=True, client_timeout=self.timeout_s)
            config = client.get_model_config(model_name, as_json=True, client_timeout=self.timeout_s)
        except InferenceServerException as error:
            self._fail(error, model_name)
        inputs = metadata.get("inputs") or []
        outputs = metadata.get("outputs") or []
        if not inputs or not outputs:
            raise FailedPrecondition(
                f"model {model_name!r} on Triton server {self.url} has no inputs or outputs"
            )
        datatype = str(inputs[0].get("datatype", "FP32"))
        if datatype not in _NUMPY_TYPES:
            raise FailedPrecondition(
                f"model {model_name!r} on Triton server {self.url}: input type {datatype} is not supported"
            )
        max_batch_size = int(config.get("config", {}).get("max_batch_size", 0) or 0)
        shape = [int(d) for d in inputs[0].get("shape", [])]
        fixed = shape[0] if max_batch_size == 0 and shape and shape[0] > 0 else None
        info = TritonModelInfo(
            name=model_name,
            input_name=str(inputs[0]["name"]),
            input_datatype=datatype,
            output_names=tuple(str(output["name"]) for output in outputs),
            max_batch_size=max_batch_size,
            fixed_batch=fixed,
        )
        with self._lock:
            self._models[model_name] = info
        return info

    def run(self, spec: ModelSpec, batch: np.ndarray) -> list[np.ndarray]:
        """`batch` [N, ...] -> every output of the model, in the server's order, [N, ...] each.

        A batch larger than the model's max_batch_size goes as several requests.
        """
        if batch.ndim == 0 or len(batch) == 0:
            raise ValueError(f"model {spec.model_id!r}: the batch is empty")
        info = self.model_info(spec.model_id)
        data = np.ascontiguousarray(batch, dtype=_NUMPY_TYPES[info.input_datatype])
        step = info.step or len(data)
        parts = [self._infer(info, data[start : start + step]) for start in range(0, len(data), step)]
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate(chunks, axis=0) for chunks in zip(*parts, strict=True)]

    def _infer(self, info: TritonModelInfo, data: np.ndarray) -> list[np.ndarray]:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        client = self._connect()
        model_input = grpcclient.InferInput(info.input_name, list(data.shape), info.input_datatype)
        model_input.set_data_from_numpy(data)
        requested = [grpcclient.InferRequestedOutput(name) for name in info.output_names]
        try:
            result = client.infer(info.name, [model_input], outputs=requested, client_timeout=self.timeout_s)
        except InferenceServerException as error:
            with self._lock:  # the model may have been reloaded with another config: ask again
                self._models.pop(info.name, None)
            self._fail(error, info.name)
        outputs = []
        for name in info.output_names:
            array = result.as_numpy(name)
            if array is None:
                raise SluiceError(f"model {info.name!r} on Triton server {self.url} returned no {name!r}")
            outputs.append(array)
        return outputs
