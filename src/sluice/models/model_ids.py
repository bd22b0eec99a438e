"""The rule for model ids users choose: `name` or `project/name`, safe as a path in the store."""

from __future__ import annotations

import re

from sluice.errors import InvalidArgument

MODEL_ID_RULE = (
    "lower case letters, digits, '-', '_' and '.', with one optional '/', each part starting with "
    "a letter or digit, at most 128 characters"
)
MAX_MODEL_ID_LENGTH = 128
BUILT_IN_PREFIX = "sluice/"
_PART = r"[a-z0-9][a-z0-9._-]*"
_MODEL_ID = re.compile(rf"^{_PART}(/{_PART})?$")


def validate_model_id(model_id: str) -> str:
    """`model_id` when it follows the rule, else InvalidArgument naming the rule."""
    if len(model_id or "") > MAX_MODEL_ID_LENGTH or not _MODEL_ID.match(model_id or ""):
        raise InvalidArgument(f"invalid model id {model_id!r}: use {MODEL_ID_RULE}")
    return model_id
