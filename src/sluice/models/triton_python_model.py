"""A Triton python-backend model that runs an ONNX file with ONNX Runtime on CPU.

Not imported by Sluice: `sluice models export-triton` copies this file into a Triton model
repository as `<model>/1/model.py`. It runs inside the Triton server's own Python environment
(numpy<2 and onnxruntime), so it imports nothing from Sluice.

The ONNX file lies beside it in the version folder; its name is the model parameter
`onnx_file`. Requests the dynamic batcher hands over together are concatenated into one batch
when their shapes allow (and the model's batch dimension is not fixed), else run one by one.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


def _parameter(config: dict[str, Any], key: str, default: str) -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    return str(value) if value else default


class TritonPythonModel:
    """One ONNX Runtime session per model instance."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        folder = os.path.join(args["model_repository"], args["model_version"])
        path = os.path.join(folder, _parameter(config, "onnx_file", "model.onnx"))
        options = ort.SessionOptions()
        threads = int(_parameter(config, "intra_op_threads", "0"))
        if threads > 0:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        model_input = self.session.get_inputs()[0]
        self.input_name = str(model_input.name)
        self.output_names = [str(output.name) for output in self.session.get_outputs()]
        first = model_input.shape[0] if model_input.shape else None
        self.fixed_batch = first if isinstance(first, int) and first > 0 else None

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(out) for out in self.session.run(self.output_names, {self.input_name: batch})]

    def _response(self, outputs: list[np.ndarray]) -> Any:
        tensors = [pb_utils.Tensor(name, out) for name, out in zip(self.output_names, outputs, strict=True)]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _batched(self, arrays: list[np.ndarray]) -> list[Any] | None:
        """One model call for every request, or None when their inputs cannot be stacked."""
        if len(arrays) < 2 or self.fixed_batch is not None:
            return None
        first = arrays[0]
        if any(a.ndim == 0 or a.shape[1:] != first.shape[1:] or a.dtype != first.dtype for a in arrays):
            return None
        outputs = self._run(np.concatenate(arrays, axis=0))
        sizes = [len(a) for a in arrays]
        if any(len(out) != sum(sizes) for out in outputs):
            return None
        bounds = np.cumsum([0, *sizes])
        return [
            self._response([out[start:end] for out in outputs]) for start, end in itertools.pairwise(bounds)
        ]

    def execute(self, requests: list[Any]) -> list[Any]:
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        try:
            responses = self._batched(arrays)
        except Exception:
            responses = None  # one bad request must not fail the others: run them one by one
        if responses is not None:
            return responses
        responses = []
        for array in arrays:
            try:
                responses.append(self._response(self._run(array)))
            except Exception as error:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error))))
        return responses

    def finalize(self) -> None:
        self.session = None
