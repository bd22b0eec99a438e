"""Test helpers for models: a crafted YOLOv8-layout ONNX model and scikit-image photographs."""

from __future__ import annotations

from collections.abc import Sequence
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


def constant_yolov8_model(path: Path, output: np.ndarray, input_size: tuple[int, int] = (640, 640)) -> Path:
    """An ONNX model: images [N, 3, H, W] -> `output` [1, 4 + C, A] repeated N times.

    The output depends on the input (a zero times its mean is added) so its batch size follows
    the input's.
    """
    width, height = input_size
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean", "shape"], ["mean3"]),
        helper.make_node("Mul", ["mean3", "zero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "boxes"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant_yolov8",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, height, width])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", *output.shape[1:]])],
        initializer=[
            numpy_helper.from_array(np.array([-1, 1, 1], dtype=np.int64), "shape"),
            numpy_helper.from_array(np.zeros((1,), dtype=np.float32), "zero"),
            numpy_helper.from_array(output.astype(np.float32), "boxes"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
