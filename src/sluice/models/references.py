"""Which models a workflow definition names, so the scheduler can fetch exactly their specs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MODEL_PROPERTY = "model_id"
_INPUT_PREFIX = "$inputs."


def referenced_model_ids(
    definition: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> set[str]:
    """The model ids in the steps' `model_id` properties (built-in ids included).

    A literal string counts as it is. A `$inputs.<name>` selector counts as the value given in
    `parameters` for that input, else the input's `default_value`, when that is a string. Any
    other shape is skipped: this helper reads, the compiler judges.
    """
    defaults: dict[str, Any] = {}
    for entry in definition.get("inputs") or ():
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            defaults[entry["name"]] = entry.get("default_value")
    given = {**defaults, **(parameters or {})}
    found: set[str] = set()
    for step in definition.get("steps") or ():
        value = step.get(MODEL_PROPERTY) if isinstance(step, Mapping) else None
        if isinstance(value, str) and value.startswith(_INPUT_PREFIX):
            value = given.get(value[len(_INPUT_PREFIX) :])
        if isinstance(value, str) and value and not value.startswith("$"):
            found.add(value)
    return found
