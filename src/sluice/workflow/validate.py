"""Checking what a parsed workflow means: inputs, block types, properties and their wiring.

Each check is a plain function raising InvalidArgument with a message that names the input,
step, property or output at fault. The result binds every step property to a literal value or
a selector, with defaults filled in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluice.errors import InvalidArgument
from sluice.workflow.blocks import find_block, known_types, refusal
from sluice.workflow.blocks.base import BlockManifest, Property
from sluice.workflow.kinds import Kind
from sluice.workflow.selectors import Selector, is_selector, parse_selector
from sluice.workflow.spec import (
    IMAGE_INPUT_TYPES,
    PARAMETER_INPUT_TYPES,
    StepSpec,
    WorkflowSpec,
)


@dataclass(frozen=True)
class Binding:
    """Where one property gets its value: a selector, or else the literal."""

    literal: Any = None
    selector: Selector | None = None


@dataclass(frozen=True)
class BoundStep:
    name: str
    manifest: BlockManifest
    bindings: Mapping[str, Binding]

    def upstream(self) -> set[str]:
        """Names of the steps whose outputs this step reads."""
        return {
            b.selector.name
            for b in self.bindings.values()
            if b.selector is not None and b.selector.source == "steps"
        }


@dataclass(frozen=True)
class BoundOutput:
    name: str
    selector: Selector
    kind: Kind


@dataclass(frozen=True)
class ValidatedWorkflow:
    image_input: str
    parameters: Mapping[str, Any]
    """Parameter name -> default value (None when it has none)."""
    steps: Mapping[str, BoundStep]
    """In definition order."""
    outputs: tuple[BoundOutput, ...]


def _image_input(spec: WorkflowSpec) -> str:
    known = sorted(IMAGE_INPUT_TYPES | PARAMETER_INPUT_TYPES)
    seen: set[str] = set()
    for entry in spec.inputs:
        if entry.type not in known:
            raise InvalidArgument(
                f"input {entry.name!r}: unknown input type {entry.type!r} (known: {', '.join(known)})"
            )
        if entry.name in seen:
            raise InvalidArgument(f"input name {entry.name!r} is used twice")
        seen.add(entry.name)
    images = [entry.name for entry in spec.inputs if entry.is_image]
    if len(images) != 1:
        found = ", ".join(images) if images else "none"
        raise InvalidArgument(f"workflow needs exactly one WorkflowImage input; found {found}")
    return images[0]


def _manifest(step: StepSpec) -> BlockManifest:
    reason = refusal(step.type)
    if reason is not None:
        raise InvalidArgument(f"step {step.name!r}: block {step.type!r} is refused: {reason}")
    manifest = find_block(step.type)
    if manifest is None:
        raise InvalidArgument(
            f"step {step.name!r}: unknown block type {step.type!r}; known: {', '.join(known_types())}"
        )
    return manifest


def _kind_of(selector: Selector, spec: WorkflowSpec, manifests: Mapping[str, BlockManifest]) -> Kind:
    """The kind a selector points at; raises ValueError when it points at nothing."""
    if selector.source == "inputs":
        for entry in spec.inputs:
            if entry.name == selector.name:
                return Kind.IMAGE if entry.is_image else Kind.PARAMETER
        raise ValueError(f"{selector} refers to an input that does not exist")
    manifest = manifests.get(selector.name)
    if manifest is None:
        raise ValueError(f"{selector} refers to a step that does not exist")
    kind = manifest.outputs.get(selector.output)
    if kind is None:
        raise ValueError(
            f"{selector}: step {selector.name!r} has no output {selector.output!r} "
            f"(outputs: {', '.join(manifest.outputs)})"
        )
    return kind


def _bind(
    name: str,
    prop: Property,
    value: Any,
    spec: WorkflowSpec,
    manifests: Mapping[str, BlockManifest],
    defaults: Mapping[str, Any],
) -> Binding:
    """Bind one given property value; raises ValueError saying what is wrong."""
    if not is_selector(value):
        if prop.selector_only:
            raise ValueError(f"must be a selector such as $inputs.image, got {value!r}")
        if prop.check is not None and value is not None:
            prop.check(value)
        return Binding(literal=value)
    selector = parse_selector(value)
    kind = _kind_of(selector, spec, manifests)
    if kind not in prop.kinds:
        expected = " or ".join(k.value for k in prop.kinds)
        raise ValueError(f"expects {expected}, but {selector} is {kind.value}")
    default = defaults.get(selector.name) if selector.source == "inputs" else None
    if kind == Kind.PARAMETER and prop.check is not None and default is not None:
        try:
            prop.check(default)
        except ValueError as error:
            raise ValueError(f"default of {selector}: {error}") from None
    return Binding(selector=selector)


def _bind_step(
    step: StepSpec,
    manifest: BlockManifest,
    spec: WorkflowSpec,
    manifests: Mapping[str, BlockManifest],
    defaults: Mapping[str, Any],
) -> BoundStep:
    given: dict[str, Any] = {}
    for raw_name, value in step.properties.items():
        if raw_name in manifest.ignored:
            continue
        name = manifest.aliases.get(raw_name, raw_name)
        if name not in manifest.properties:
            known = ", ".join(sorted([*manifest.properties, *manifest.aliases]))
            raise InvalidArgument(
                f"step {step.name!r}: unknown property {raw_name!r} for {manifest.type} (known: {known})"
            )
        if name in given:
            raise InvalidArgument(f"step {step.name!r}: property {name!r} is given twice")
        given[name] = value
    bindings: dict[str, Binding] = {}
    for name, prop in manifest.properties.items():
        if name not in given:
            if prop.required:
                raise InvalidArgument(f"step {step.name!r}: property {name!r} is required by {manifest.type}")
            bindings[name] = Binding(literal=prop.default)
            continue
        try:
            bindings[name] = _bind(name, prop, given[name], spec, manifests, defaults)
        except ValueError as error:
            raise InvalidArgument(f"step {step.name!r}: property {name!r}: {error}") from None
    return BoundStep(step.name, manifest, bindings)


def validate_workflow(spec: WorkflowSpec) -> ValidatedWorkflow:
    """Check a parsed workflow and bind its steps (the order is checked by `graph`)."""
    image_input = _image_input(spec)
    defaults = {entry.name: entry.default_value for entry in spec.inputs if not entry.is_image}
    if not spec.steps:
        raise InvalidArgument("workflow has no steps")
    manifests: dict[str, BlockManifest] = {}
    for step in spec.steps:
        if step.name in manifests:
            raise InvalidArgument(f"step name {step.name!r} is used twice")
        manifests[step.name] = _manifest(step)
    steps = {
        step.name: _bind_step(step, manifests[step.name], spec, manifests, defaults) for step in spec.steps
    }
    if not spec.outputs:
        raise InvalidArgument("workflow has no outputs")
    outputs: list[BoundOutput] = []
    for entry in spec.outputs:
        if any(o.name == entry.name for o in outputs):
            raise InvalidArgument(f"output name {entry.name!r} is used twice")
        try:
            selector = parse_selector(entry.selector)
            kind = _kind_of(selector, spec, manifests)
        except ValueError as error:
            raise InvalidArgument(f"output {entry.name!r}: {error}") from None
        outputs.append(BoundOutput(entry.name, selector, kind))
    return ValidatedWorkflow(image_input, defaults, steps, tuple(outputs))
