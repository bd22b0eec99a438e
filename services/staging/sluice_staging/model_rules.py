"""Rules about registering a model: its id, its spec, and whether its file fits the spec."""

from __future__ import annotations

from pathlib import Path

from sluice.errors import InvalidArgument, PermissionDenied
from sluice.models.model_checks import check_model_fits
from sluice.models.model_ids import BUILT_IN_PREFIX, validate_model_id
from sluice.models.model_info import inspect_model
from sluice.models.registry import is_built_in
from sluice.models.spec import ModelSpec
from sluice.models.spec_json import spec_from_json

_MAX_REASON = 300


def check_registration(model_id: str, spec_json: str) -> ModelSpec:
    """The spec of a registration's first chunk, once its id and spec are acceptable."""
    if not model_id or not spec_json:
        raise InvalidArgument("the first chunk of RegisterModel must carry model_id and spec_json")
    validate_model_id(model_id)
    if is_built_in(model_id):
        raise PermissionDenied(f"model '{model_id}' is built in and cannot be replaced")
    if model_id.startswith(BUILT_IN_PREFIX):
        raise InvalidArgument(
            f"invalid model id '{model_id}': '{BUILT_IN_PREFIX}' is kept for built-in models"
        )
    return spec_from_json(spec_json, model_id=model_id)


def check_model_file(path: Path, spec: ModelSpec) -> ModelSpec:
    """`spec` (its max_batch capped by a fixed batch size) when `path` is an ONNX model fitting it."""
    try:
        info = inspect_model(path)
    except Exception as error:  # ONNX Runtime raises several types for a bad file
        lines = str(error).replace(str(path), "the file").strip().splitlines()
        reason = (lines[0] if lines else type(error).__name__)[:_MAX_REASON]
        raise InvalidArgument(f"model '{spec.model_id}' is not a loadable ONNX file: {reason}") from None
    return check_model_fits(spec, info)
