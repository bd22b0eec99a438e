"""Checking what a parsed workflow means: inputs, block types, properties, wiring, outputs.

Each check is a plain function raising InvalidArgument with a message that names the input,
step, property or output at fault. The result binds every step property to a literal value or
a selector, with defaults filled in; the order and lineage of steps are checked afterwards
(`graph`, `lineage`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sluice.errors import InvalidArgument
from sluice.models.catalog import ModelCatalog
from sluice.workflow.binding import BindingScope, BoundStep, bind_step, kind_of
from sluice.workflow.blocks.base import BlockManifest
from sluice.workflow.forbidden import refusal
from sluice.workflow.kinds import Kind
from sluice.workflow.parameters import ParameterSpec
from sluice.workflow.registry import REGISTRY, BlockRegistry
from sluice.workflow.selectors import Selector, parse_selector
from sluice.workflow.spec import INPUT_TYPES, WorkflowSpec


@dataclass(frozen=True)
class BoundOutput:
    name: str
    selector: Selector
    kind: Kind


@dataclass(frozen=True)
class ValidatedWorkflow:
    image_input: str
    parameters: Mapping[str, ParameterSpec]
    steps: Mapping[str, BoundStep]
    """In definition order."""
    outputs: tuple[BoundOutput, ...]


def _image_input(spec: WorkflowSpec) -> str:
    known = sorted(INPUT_TYPES)
    seen: set[str] = set()
    for entry in spec.inputs:
        if entry.type not in INPUT_TYPES:
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


def _parameters(spec: WorkflowSpec) -> dict[str, ParameterSpec]:
    parameters = {}
    for entry in spec.inputs:
        if not entry.is_parameter:
            continue
        parameter = ParameterSpec(entry.name, entry.default_value, entry.kind)
        try:
            parameter.check(entry.default_value)
        except ValueError as error:
            raise InvalidArgument(f"input {entry.name!r}: property 'default_value': {error}") from None
        parameters[entry.name] = parameter
    return parameters


def _manifests(spec: WorkflowSpec, registry: BlockRegistry) -> dict[str, BlockManifest]:
    """Each step's manifest; refuses forbidden blocks, then lists every unsupported type at once."""
    manifests: dict[str, BlockManifest] = {}
    unsupported: list[str] = []
    for step in spec.steps:
        if step.name in manifests:
            raise InvalidArgument(f"step name {step.name!r} is used twice")
        reason = refusal(step.type)
        if reason is not None:
            raise InvalidArgument(
                f"step {step.name!r}: block {step.type!r} is refused: {reason} (property 'type')"
            )
        manifest = registry.find(step.type)
        if manifest is None:
            unsupported.append(f"step {step.name!r} type {step.type!r}")
            continue
        manifests[step.name] = manifest
    if unsupported:
        raise InvalidArgument(
            f"unsupported block types: {', '.join(unsupported)} (supported: {', '.join(registry.own_types())}"
            " and their Roboflow names)"
        )
    return manifests


def _outputs(spec: WorkflowSpec, manifests: Mapping[str, BlockManifest]) -> tuple[BoundOutput, ...]:
    if not spec.outputs:
        raise InvalidArgument("workflow has no outputs")
    outputs: list[BoundOutput] = []
    for entry in spec.outputs:
        if any(o.name == entry.name for o in outputs):
            raise InvalidArgument(f"output name {entry.name!r} is used twice")
        try:
            selector = parse_selector(entry.selector)
            kind = kind_of(selector, spec, manifests)
        except ValueError as error:
            raise InvalidArgument(f"output {entry.name!r}: property 'selector': {error}") from None
        outputs.append(BoundOutput(entry.name, selector, kind))
    return tuple(outputs)


def validate_workflow(
    spec: WorkflowSpec, models: ModelCatalog, registry: BlockRegistry = REGISTRY
) -> ValidatedWorkflow:
    """Check a parsed workflow and bind its steps (the order is checked by `graph`)."""
    image_input = _image_input(spec)
    parameters = _parameters(spec)
    if not spec.steps:
        raise InvalidArgument("workflow has no steps")
    manifests = _manifests(spec, registry)
    defaults = {name: parameter.default for name, parameter in parameters.items()}
    scope = BindingScope(spec, manifests, defaults, models)
    steps = {step.name: bind_step(step, manifests[step.name], scope) for step in spec.steps}
    return ValidatedWorkflow(image_input, parameters, steps, _outputs(spec, manifests))
