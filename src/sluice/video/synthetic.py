"""Synthetic test videos with a ground truth: coloured squares crossing a black frame.

`moving_shapes_plan` says which square is where and when (a `ShapeTrack` each), `render_shapes_frame`
draws one instant of a plan, `write_moving_shapes` encodes a whole clip to an H.264 mp4, and
`write_shapes_detector` writes a tiny hand-built ONNX model in the YOLOv8 raw layout that finds
each colour's square exactly, so video jobs can be tested end to end (detection, tracking, the
joining of tracker ids across segment seams) without a trained model. At most one square of each
colour is visible at any time, so "the red box" of a frame is always the red square of the plan.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sluice.models.spec import ModelSpec

SHAPES_CLASS_NAMES = ("red", "green", "blue")
"""The shapes detector's classes, in output order."""
SHAPES_MODEL_ID = "demo/shapes"
SHAPES_INPUT_SIZE = 320
"""Side of the shapes detector's square input (letterboxed with gray 114 padding)."""
BGR: dict[str, tuple[int, int, int]] = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}
ON_THRESHOLD = 0.6
"""A pixel is of colour c when channel c is above this (input in 0..1) ..."""
OFF_THRESHOLD = 0.35
"""... and the two other channels are below this (gray padding, 114/255 = 0.45, is neither)."""


@dataclass(frozen=True)
class ShapeTrack:
    """A filled square of pure `color` moving left to right at constant speed along a lane.

    At `enter_s` its right edge touches the frame's left edge; at `exit_s` its left edge leaves the
    right edge. `lane_y` is its top row, `size` its side in pixels.
    """

    color: str
    enter_s: float
    exit_s: float
    lane_y: int
    size: int

    def left_at(self, width: int, t: float) -> int:
        """The square's left column at time `t` (may lie outside the frame)."""
        progress = (t - self.enter_s) / (self.exit_s - self.enter_s)
        return round(-self.size + (width + self.size) * progress)

    def box_at(self, width: int, height: int, t: float) -> tuple[int, int, int, int] | None:
        """The visible part of the square at `t` as pixel edges (x1, y1, x2, y2), None if hidden."""
        if not self.enter_s < t < self.exit_s:
            return None
        left = self.left_at(width, t)
        x1, x2 = max(0, left), min(width, left + self.size)
        y1, y2 = max(0, self.lane_y), min(height, self.lane_y + self.size)
        if x2 <= x1 or y2 <= y1:
            return None
        return x1, y1, x2, y2


# (color, enter, exit) as fractions of the clip, and the lane (0..3, top to bottom).
_SCHEDULE = (
    ("blue", 0.02, 0.34, 3),
    ("red", 0.03, 0.45, 0),
    ("green", 0.08, 0.88, 1),  # spans the middle: crosses a seam at half the clip
    ("blue", 0.37, 0.85, 2),  # enters shortly before the middle, spans it too
    ("red", 0.55, 0.97, 3),  # a second red square, after the first has left
)
_LANES = (0.06, 0.30, 0.54, 0.76)
_SIZE = 0.18


def moving_shapes_plan(width: int, height: int, duration_s: float) -> list[ShapeTrack]:
    """Five squares (two red, one green, two blue) crossing a `width` x `height` clip.

    Several overlap in time on different lanes, never two of one colour at once; the green one and
    the second blue one are visible across the clip's middle.
    """
    size = max(4, 2 * round(_SIZE * min(width, height) / 2))  # even: halves exactly when scaled
    return [
        ShapeTrack(
            color=color,
            enter_s=round(enter * duration_s, 3),
            exit_s=round(leave * duration_s, 3),
            lane_y=min(round(_LANES[lane] * height), max(0, height - size)),
            size=size,
        )
        for color, enter, leave, lane in _SCHEDULE
    ]


def render_shapes_frame(plan: Sequence[ShapeTrack], width: int, height: int, t: float) -> np.ndarray:
    """The frame at time `t`: each visible square of `plan` on black, BGR uint8 [height, width, 3]."""
    frame = np.zeros((height, width, 3), np.uint8)
    for track in plan:
        box = track.box_at(width, height, t)
        if box is not None:
            x1, y1, x2, y2 = box
            frame[y1:y2, x1:x2] = BGR[track.color]
    return frame


def _ffmpeg_exe() -> str:
    """The ffmpeg binary: the video package's choice when it has one, else imageio-ffmpeg's."""
    try:
        tools = importlib.import_module("sluice.video.tools")
        return str(tools.ffmpeg_exe())
    except (ImportError, AttributeError):
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())


def write_moving_shapes(
    path: Path | str,
    *,
    width: int = 640,
    height: int = 360,
    fps: float = 25.0,
    duration_s: float = 12.0,
    plan: Sequence[ShapeTrack] | None = None,
) -> list[ShapeTrack]:
    """Encode the clip of `plan` (default: `moving_shapes_plan`) to an H.264 mp4 at `path`.

    Frame i shows time i / fps; yuv420p at CRF 18, so the pure colours survive compression.
    Returns the plan. Width and height must be even (yuv420p).
    """
    import ffmpeg

    if width % 2 or height % 2:
        raise ValueError(f"width and height must be even for yuv420p, got {width}x{height}")
    tracks = list(plan) if plan is not None else moving_shapes_plan(width, height, duration_s)
    frames = round(duration_s * fps)
    stream: Any = (
        ffmpeg.input("pipe:", format="rawvideo", pix_fmt="bgr24", s=f"{width}x{height}", r=fps)
        .output(str(path), vcodec="libx264", pix_fmt="yuv420p", crf=18, preset="veryfast", r=fps)
        .overwrite_output()
        .global_args("-loglevel", "error")
    )
    process = stream.run_async(cmd=_ffmpeg_exe(), pipe_stdin=True, pipe_stderr=True)
    try:
        for index in range(frames):
            process.stdin.write(render_shapes_frame(tracks, width, height, index / fps).tobytes())
    finally:
        process.stdin.close()
        errors = process.stderr.read()
        code = process.wait()
    if code != 0:
        raise RuntimeError(f"ffmpeg failed ({code}): {errors.decode(errors='replace').strip()}")
    return tracks


def write_shapes_detector(path: Path | str, input_size: int = SHAPES_INPUT_SIZE) -> None:
    """A hand-built ONNX detector of the pure red, green and blue squares, in YOLOv8's raw layout.

    Input `images` [N, 3, S, S]: RGB in 0..1 (S = `input_size`). Output `output0` [N, 4 + 3, 3]:
    anchor c is class c's candidate. mask_c marks the pixels whose channel c is above 0.6 and the
    two others below 0.35; the box is the mask's bounding box in input pixels
    (x2 = max(mask * (x + 1)), x1 = S - max(mask * (S - x)), likewise for y) as (cx, cy, w, h),
    and the class scores are one-hot(c) * max(mask_c): 1 when the colour is present, else 0.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    size = input_size
    steps = np.arange(size, dtype=np.float32)
    constants: dict[str, np.ndarray] = {
        "on": np.array(ON_THRESHOLD, np.float32),
        "off": np.array(OFF_THRESHOLD, np.float32),
        "side": np.array(float(size), np.float32),
        "half": np.array(0.5, np.float32),
        "x_after": (steps + 1).reshape(1, 1, 1, size),
        "x_before": (size - steps).reshape(1, 1, 1, size),
        "y_after": (steps + 1).reshape(1, 1, size, 1),
        "y_before": (size - steps).reshape(1, 1, size, 1),
        "eye": np.eye(3, dtype=np.float32).reshape(1, 3, 3),
        "axis1": np.array([1], np.int64),
    }
    nodes = [helper.make_node("Split", ["images"], ["r", "g", "b"], axis=1)]
    for name in ("r", "g", "b"):
        nodes += [
            helper.make_node("Greater", [name, "on"], [f"{name}_on"]),
            helper.make_node("Less", [name, "off"], [f"{name}_off"]),
        ]
    masks = []
    for name, (first, second) in (("r", ("g", "b")), ("g", ("r", "b")), ("b", ("r", "g"))):
        nodes += [
            helper.make_node("And", [f"{name}_on", f"{first}_off"], [f"{name}_and"]),
            helper.make_node("And", [f"{name}_and", f"{second}_off"], [f"{name}_bool"]),
            helper.make_node("Cast", [f"{name}_bool"], [f"{name}_mask"], to=TensorProto.FLOAT),
        ]
        masks.append(f"{name}_mask")
    nodes.append(helper.make_node("Concat", masks, ["mask"], axis=1))  # [N, 3, S, S]

    def reduce_max(grid: str, out: str) -> None:
        nodes.append(helper.make_node("Mul", ["mask", grid], [f"{out}_grid"]))
        nodes.append(helper.make_node("ReduceMax", [f"{out}_grid"], [out], axes=[2, 3], keepdims=0))

    reduce_max("x_after", "x2")
    reduce_max("y_after", "y2")
    reduce_max("x_before", "x1_from_right")
    reduce_max("y_before", "y1_from_bottom")
    nodes += [
        helper.make_node("Sub", ["side", "x1_from_right"], ["x1"]),
        helper.make_node("Sub", ["side", "y1_from_bottom"], ["y1"]),
        helper.make_node("Sub", ["x2", "x1"], ["w"]),
        helper.make_node("Sub", ["y2", "y1"], ["h"]),
        helper.make_node("Add", ["x1", "x2"], ["x_sum"]),
        helper.make_node("Add", ["y1", "y2"], ["y_sum"]),
        helper.make_node("Mul", ["x_sum", "half"], ["cx"]),
        helper.make_node("Mul", ["y_sum", "half"], ["cy"]),
        helper.make_node("ReduceMax", ["mask"], ["present"], axes=[2, 3], keepdims=0),  # [N, 3]
        helper.make_node("Unsqueeze", ["present", "axis1"], ["present_row"]),  # [N, 1, 3]
        helper.make_node("Mul", ["present_row", "eye"], ["scores"]),  # [N, 3 classes, 3 anchors]
    ]
    for name in ("cx", "cy", "w", "h"):
        nodes.append(helper.make_node("Unsqueeze", [name, "axis1"], [f"{name}_row"]))
    nodes.append(
        helper.make_node("Concat", ["cx_row", "cy_row", "w_row", "h_row", "scores"], ["output0"], axis=1)
    )
    graph = helper.make_graph(
        nodes,
        "shapes",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", 4 + len(SHAPES_CLASS_NAMES), 3])],
        initializer=[numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def shapes_spec_fields(input_size: int = SHAPES_INPUT_SIZE) -> dict[str, Any]:
    """The shapes detector's spec as JSON fields (what `sluice models register` needs; no model id)."""
    return {
        "task": "object-detection",
        "output_layout": "yolov8",
        "class_names": list(SHAPES_CLASS_NAMES),
        "input_size": [input_size, input_size],
        "resize_mode": "letterbox",
        "channel_order": "rgb",
    }


def shapes_model_spec(
    path: Path | str, model_id: str = SHAPES_MODEL_ID, input_size: int = SHAPES_INPUT_SIZE
) -> ModelSpec:
    """The `ModelSpec` of a shapes detector written by `write_shapes_detector(path, input_size)`."""
    return ModelSpec(
        model_id=model_id,
        path=Path(path),
        class_names=SHAPES_CLASS_NAMES,
        output_layout="yolov8",
        task="object-detection",
        input_size=(input_size, input_size),
        resize_mode="letterbox",
        channel_order="rgb",
    )
