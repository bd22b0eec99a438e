"""Parsing a workflow definition (Roboflow Workflows' JSON shape) into plain dataclasses.

This step checks only the shape: types of fields and names. Meaning is checked by `validate`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sluice.errors import InvalidArgument
from sluice.workflow.selectors import NAME_PATTERN

IMAGE_INPUT_TYPES = frozenset({"WorkflowImage", "InferenceImage"})
PARAMETER_INPUT_TYPES = frozenset({"WorkflowParameter", "InferenceParameter"})
VIDEO_METADATA_INPUT_TYPES = frozenset({"WorkflowVideoMetadata"})
INPUT_TYPES = IMAGE_INPUT_TYPES | PARAMETER_INPUT_TYPES | VIDEO_METADATA_INPUT_TYPES
OUTPUT_TYPES = frozenset({"JsonField"})


@dataclass(frozen=True)
class InputSpec:
    type: str
    name: str
    default_value: Any = None
    kind: tuple[str, ...] = ()
    """Declared kinds of a parameter (Roboflow's `kind`), by name; empty when not declared."""

    @property
    def is_image(self) -> bool:
        return self.type in IMAGE_INPUT_TYPES

    @property
    def is_parameter(self) -> bool:
        return self.type in PARAMETER_INPUT_TYPES


@dataclass(frozen=True)
class StepSpec:
    type: str
    name: str
    properties: dict[str, Any]
    """Every field of the step except `type` and `name`."""


@dataclass(frozen=True)
class OutputSpec:
    type: str
    name: str
    selector: str


@dataclass(frozen=True)
class WorkflowSpec:
    version: str
    inputs: tuple[InputSpec, ...]
    steps: tuple[StepSpec, ...]
    outputs: tuple[OutputSpec, ...]


def load_definition(definition: dict[str, Any] | str) -> dict[str, Any]:
    """The definition as a dict (a JSON string is parsed)."""
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except json.JSONDecodeError as error:
            raise InvalidArgument(f"workflow is not valid JSON: {error}") from None
    if not isinstance(definition, dict):
        raise InvalidArgument("workflow must be a JSON object")
    return definition


def _entries(definition: dict[str, Any], section: str) -> list[dict[str, Any]]:
    entries = definition.get(section)
    if not isinstance(entries, list):
        raise InvalidArgument(f"workflow {section!r} must be a list")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidArgument(f"{section}[{index}] must be an object")
        for field in ("type", "name"):
            if not isinstance(entry.get(field), str) or not entry[field]:
                raise InvalidArgument(f"{section}[{index}] needs a string {field!r}")
        if not NAME_PATTERN.match(entry["name"]):
            raise InvalidArgument(
                f"{section}[{index}]: name {entry['name']!r} must be letters, digits, '_' or '-'"
                " and start with a letter or '_'"
            )
    return entries


def _kind_names(entry: dict[str, Any]) -> tuple[str, ...]:
    """An input's declared `kind`: a name, or a list of names or of {"name": ...} objects."""
    raw = entry.get("kind")
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    names = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"input {entry['name']!r}: property 'kind' must be kind names, got {raw!r}")
        names.append(name)
    return tuple(names)


def parse_workflow(definition: dict[str, Any]) -> WorkflowSpec:
    """Check the shape of a definition and return it as a WorkflowSpec."""
    if "dynamic_blocks_definitions" in definition:
        raise InvalidArgument("dynamic blocks are refused: they run custom Python code on the worker")
    version = definition.get("version")
    if not isinstance(version, str) or not version:
        raise InvalidArgument("workflow needs a 'version' string (e.g. \"1.0\")")
    inputs = tuple(
        InputSpec(entry["type"], entry["name"], entry.get("default_value"), _kind_names(entry))
        for entry in _entries(definition, "inputs")
    )
    steps = tuple(
        StepSpec(
            entry["type"],
            entry["name"],
            {k: v for k, v in entry.items() if k not in ("type", "name")},
        )
        for entry in _entries(definition, "steps")
    )
    outputs = []
    for index, entry in enumerate(_entries(definition, "outputs")):
        selector = entry.get("selector")
        if not isinstance(selector, str):
            raise InvalidArgument(f"output {entry['name']!r}: property 'selector' must be a selector string")
        if entry["type"] not in OUTPUT_TYPES:
            raise InvalidArgument(
                f"outputs[{index}] {entry['name']!r}: unknown output type {entry['type']!r}"
                f" (known: {', '.join(sorted(OUTPUT_TYPES))})"
            )
        outputs.append(OutputSpec(entry["type"], entry["name"], selector))
    return WorkflowSpec(version, inputs, steps, tuple(outputs))
