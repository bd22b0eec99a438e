"""A near-free model for the orchestration ceiling: 64x64 image -> four classes, almost no compute.

A 1x1 convolution (3 -> 4 channels, seeded weights) and a global average pool: the forward pass
of a 64x64 image costs microseconds, so a job over such a model measures what Sluice itself
costs per image (reading, decoding, results, queues, the scheduler, the export).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT_SIZE = 64
CLASS_NAMES = ("a", "b", "c", "d")


def write_tiny_classifier(path: Path, seed: int = 0) -> Path:
    """Write the ONNX file: images [N, 3, 64, 64] -> scores [N, 4] (logits); returns `path`."""
    rng = np.random.default_rng(seed)
    classes = len(CLASS_NAMES)
    weights = rng.normal(0.0, 1.0, (classes, 3, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["images", "weights"], ["features"]),
        helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["scores"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-classifier",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes])],
        initializer=[numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
