"""What a block is: a manifest the compiler checks, and a runner built from it.

A block runs on a batch: `run` takes one dict of resolved properties per image and returns one
dict of outputs per image, so a model block can send the whole batch to its model at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sluice.workflow.kinds import Kind

Check = Callable[[Any], None]
"""Validates one concrete property value; raises ValueError with a message for the user."""


@dataclass(frozen=True)
class Property:
    """One property of a step: what it may be wired to, and whether it is needed."""

    kinds: tuple[Kind, ...]
    required: bool = False
    default: Any = None
    selector_only: bool = False
    """True when the value must come from a selector (images, predictions)."""
    check: Check | None = None
    description: str = ""


@dataclass(frozen=True)
class BlockContext:
    """What the worker hands to every block it builds."""

    intra_op_threads: int | None = None


class Block(Protocol):
    def run(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One dict of property values per image -> one dict of outputs per image."""
        ...


@dataclass(frozen=True)
class BlockManifest:
    """A versioned block type: its properties, outputs, and how to build its runner."""

    type: str
    description: str
    properties: Mapping[str, Property]
    outputs: Mapping[str, Kind]
    build: Callable[[BlockContext], Block]
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Other names accepted for a property (Roboflow's `images` for `image`)."""
    ignored: frozenset[str] = frozenset()
    """Properties accepted for Roboflow compatibility that have no effect here."""


def check_fraction(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"must be a number between 0 and 1, got {value!r}")


def check_positive_int(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"must be a positive integer, got {value!r}")


def check_bool(value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")


def check_optional_strings(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"must be a list of strings, got {value!r}")


def check_one_of(*choices: str) -> Check:
    def check(value: Any) -> None:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {value!r}")

    return check
