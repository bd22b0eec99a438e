"""Selectors: `$inputs.<name>` and `$steps.<step>.<output>` strings that wire a workflow."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

_NAME = r"[A-Za-z_][A-Za-z0-9_\-]*"
_INPUT = re.compile(rf"^\$inputs\.({_NAME})$")
_STEP = re.compile(rf"^\$steps\.({_NAME})\.({_NAME}|\*)$")
NAME_PATTERN = re.compile(rf"^{_NAME}$")
WILDCARD = "*"


@dataclass(frozen=True)
class Selector:
    """Where a value comes from: a workflow input, or one output of a step."""

    source: Literal["inputs", "steps"]
    name: str
    output: str = ""
    """The step output, or `*` for all of them (a wildcard, allowed in workflow outputs)."""

    @property
    def is_wildcard(self) -> bool:
        return self.output == WILDCARD

    def __str__(self) -> str:
        if self.source == "inputs":
            return f"$inputs.{self.name}"
        return f"$steps.{self.name}.{self.output}"


def is_selector(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$")


def parse_selector(value: str) -> Selector:
    """Parse a selector string; raises ValueError saying what is wrong with it."""
    if match := _INPUT.match(value):
        return Selector("inputs", match.group(1))
    if match := _STEP.match(value):
        return Selector("steps", match.group(1), match.group(2))
    raise ValueError(f"malformed selector {value!r} (expected $inputs.<name> or $steps.<step>.<output>)")
