"""Does an ONNX file fit its spec? Its first input and output against the spec's geometry and layout.

Dynamic dimensions are accepted as they are; fixed ones must agree with the spec. A problem is an
`InvalidArgument` that says what the file declares and what the spec expects.
"""

from __future__ import annotations

from dataclasses import replace

from sluice.errors import InvalidArgument
from sluice.models.ctc import class_table, spec_charset
from sluice.models.model_info import ModelInfo, TensorInfo
from sluice.models.spec import ModelSpec

FLOAT = "tensor(float)"


def _mismatch(spec: ModelSpec, problem: str) -> InvalidArgument:
    return InvalidArgument(f"model {spec.model_id!r} does not fit its spec: {problem}")


def _check_input(spec: ModelSpec, tensor: TensorInfo) -> None:
    if tensor.element_type != FLOAT:
        raise _mismatch(spec, f"input {tensor.describe()} is {tensor.element_type}; Sluice feeds float32")
    if len(tensor.shape) != 4:
        raise _mismatch(spec, f"input {tensor.describe()} is not an image batch [N, 3, H, W]")
    channels, height, width = tensor.static(1), tensor.static(2), tensor.static(3)
    if channels not in (None, 3):
        raise _mismatch(spec, f"input {tensor.describe()} has {channels} channels; Sluice feeds 3")
    if spec.resize_mode == "fixed-height":
        assert spec.input_size is not None
        min_width, wanted_height = spec.input_size
        if height not in (None, wanted_height):
            raise _mismatch(
                spec, f"input {tensor.describe()} is {height} high, the spec says {wanted_height}"
            )
        if width is not None and not min_width == spec.max_side == width:
            raise _mismatch(
                spec,
                f"input {tensor.describe()} is always {width} wide: set input_size to "
                f"[{width}, {wanted_height}] and max_side to {width}",
            )
        return
    if height is None and width is None:
        return
    if spec.input_size is None:
        raise _mismatch(
            spec,
            f"input {tensor.describe()} has a fixed size: "
            f"set input_size to [{width or '?'}, {height or '?'}]",
        )
    wanted_width, wanted_height = spec.input_size
    if width not in (None, wanted_width) or height not in (None, wanted_height):
        raise _mismatch(
            spec, f"input {tensor.describe()} does not take the spec's {wanted_width}x{wanted_height} images"
        )


def _check_output(spec: ModelSpec, tensor: TensorInfo, info: ModelInfo) -> None:
    layout = spec.output_layout
    rank = len(tensor.shape)
    if layout == "yolov8":
        channels = 4 + len(spec.class_names)
        fixed = [d for d in (tensor.static(1), tensor.static(2)) if d is not None] if rank == 3 else []
        if rank != 3 or (len(fixed) == 2 and channels not in fixed):
            raise _mismatch(
                spec,
                f"output {tensor.describe()} is not the yolov8 layout [N, 4 + classes, anchors] "
                f"for {len(spec.class_names)} classes (expected {channels} rows)",
            )
    elif layout == "dbnet":
        if rank != 4 or tensor.static(1) not in (None, 1):
            raise _mismatch(spec, f"output {tensor.describe()} is not a dbnet probability map [N, 1, H, W]")
    elif layout in ("yolov8-cls", "orientation"):
        squeezable = rank == 4 and all(tensor.static(a) in (None, 1) for a in (2, 3))
        if rank != 2 and not squeezable:
            raise _mismatch(spec, f"output {tensor.describe()} is not a classification output [N, classes]")
        if tensor.static(1) not in (None, len(spec.class_names)):
            raise _mismatch(
                spec,
                f"output {tensor.describe()} has {tensor.static(1)} classes, "
                f"the spec names {len(spec.class_names)}",
            )
    elif layout == "ctc":
        if rank != 3:
            raise _mismatch(spec, f"output {tensor.describe()} is not a CTC output [N, T, classes]")
        try:
            charset = spec_charset(spec, info.metadata)
            classes = tensor.static(2)
            if classes is not None:
                class_table(charset, classes)
        except ValueError as error:
            raise _mismatch(spec, str(error)) from None


def check_model_fits(spec: ModelSpec, info: ModelInfo) -> ModelSpec:
    """`spec`, checked against what the ONNX file declares; a fixed batch size B caps max_batch."""
    if not info.inputs or not info.outputs:
        raise _mismatch(spec, "the model has no inputs or no outputs")
    model_input = info.inputs[0]
    _check_input(spec, model_input)
    _check_output(spec, info.outputs[0], info)
    batch = model_input.static(0)
    if batch is not None and batch < spec.max_batch:
        return replace(spec, max_batch=batch)
    return spec
