"""Test helpers for models: crafted ONNX models with known outputs, and scikit-image photographs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import onnx
import skimage
from onnx import TensorProto, helper, numpy_helper


def photo(name: str) -> np.ndarray:
    """A photograph from the scikit-image wheel as BGR uint8 [H, W, 3]."""
    image = cv2.imread(str(Path(skimage.__file__).parent / "data" / name), cv2.IMREAD_COLOR)
    assert image is not None, name
    return image


def yolov8_output(
    boxes: Sequence[tuple[float, float, float, float]],
    classes: Sequence[int],
    scores: Sequence[float],
    num_classes: int,
    extra_anchors: int = 0,
) -> np.ndarray:
    """A YOLOv8 raw output [1, 4 + C, A] holding the given model-input boxes (cx, cy, w, h).

    Each anchor scores `scores[i]` for `classes[i]` and a tenth of that for the other classes;
    `extra_anchors` empty anchors (all zeros) follow.
    """
    anchors = len(boxes) + extra_anchors
    out = np.zeros((1, 4 + num_classes, anchors), dtype=np.float32)
    for i, (box, cls, score) in enumerate(zip(boxes, classes, scores, strict=True)):
        out[0, :4, i] = box
        out[0, 4:, i] = score / 10
        out[0, 4 + cls, i] = score
    return out


def constant_model(
    path: Path,
    output: np.ndarray,
    input_shape: Sequence[int | str] = ("N", 3, 640, 640),
    metadata: Mapping[str, str] | None = None,
    input_name: str = "images",
    output_name: str = "output0",
) -> Path:
    """An ONNX model: images `input_shape` [N, 3, H, W] -> `output` [1, ...] repeated N times.

    The output depends on the input (a zero times its mean is added) so its batch size follows
    the input's. `metadata` becomes the file's metadata_props. A fixed batch dimension in
    `input_shape` is kept (the output's first dimension becomes the same).
    """
    rank = output.ndim
    batch = input_shape[0]
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean", "shape"], ["mean_n"]),
        helper.make_node("Mul", ["mean_n", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "constant"], [output_name]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, *output.shape[1:]])],
        initializer=[
            numpy_helper.from_array(np.array([-1] + [1] * (rank - 1), dtype=np.int64), "shape"),
            numpy_helper.from_array(np.zeros((1,), dtype=np.float32), "zero"),
            numpy_helper.from_array(output.astype(np.float32), "constant"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, dict(metadata))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def constant_yolov8_model(path: Path, output: np.ndarray, input_size: tuple[int, int] = (640, 640)) -> Path:
    """A YOLOv8-layout model: images [N, 3, H, W] -> `output` [1, 4 + C, A] repeated N times."""
    width, height = input_size
    return constant_model(path, output, ("N", 3, height, width))


def ctc_scores(classes: Sequence[int], best: Sequence[float], num_classes: int) -> np.ndarray:
    """A CTC output [1, T, C]: step t gives class `classes[t]` probability `best[t]`, and shares
    the rest evenly among the other classes."""
    steps = len(classes)
    out = np.empty((1, steps, num_classes), dtype=np.float32)
    for t, (cls, prob) in enumerate(zip(classes, best, strict=True)):
        out[0, t] = (1 - prob) / (num_classes - 1)
        out[0, t, cls] = prob
    return out
