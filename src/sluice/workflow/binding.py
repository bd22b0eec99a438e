"""Binding a step's properties: each given value becomes a literal or a checked selector.

Selectors must point at something that exists, with a kind the property accepts. Every error
raised here is a ValueError for one property; the caller names the step and the property.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sluice.errors import InvalidArgument
from sluice.models.catalog import ModelCatalog
from sluice.workflow.blocks.base import BlockManifest, Property
from sluice.workflow.kinds import Kind, accepts
from sluice.workflow.model_checks import check_model
from sluice.workflow.selectors import Selector, is_selector, parse_selector
from sluice.workflow.spec import StepSpec, WorkflowSpec


@dataclass(frozen=True)
class Binding:
    """Where one property gets its value: a selector, or else the literal.

    For a property with `parameters_inside`, `literal` is the JSON object and `inner` maps its
    keys whose values are `$inputs.<name>` selectors to those selectors.
    """

    literal: Any = None
    selector: Selector | None = None
    inner: Mapping[str, Selector] = field(default_factory=dict)


@dataclass(frozen=True)
class BoundStep:
    name: str
    manifest: BlockManifest
    bindings: Mapping[str, Binding]
    lineage: tuple[str, ...] = ()
    """The fan-out steps whose children this step runs on: () runs once per input image,
    ("crop",) once per crop made by step 'crop' (filled in by `lineage.assign_lineages`)."""

    @property
    def output_lineage(self) -> tuple[str, ...]:
        if self.manifest.output_dimensionality_offset:
            return (*self.lineage, self.name)
        return self.lineage

    def upstream(self) -> set[str]:
        """Names of the steps whose outputs this step reads."""
        return {
            b.selector.name
            for b in self.bindings.values()
            if b.selector is not None and b.selector.source == "steps"
        }


def kind_of(selector: Selector, spec: WorkflowSpec, manifests: Mapping[str, BlockManifest]) -> Kind:
    """The kind a selector points at; raises ValueError when it points at nothing."""
    if selector.source == "inputs":
        for entry in spec.inputs:
            if entry.name == selector.name:
                if entry.is_image:
                    return Kind.IMAGE
                return Kind.PARAMETER if entry.is_parameter else Kind.VIDEO_METADATA
        raise ValueError(f"{selector} refers to an input that does not exist")
    manifest = manifests.get(selector.name)
    if manifest is None:
        raise ValueError(f"{selector} refers to a step that does not exist")
    if selector.is_wildcard:
        return Kind.ANY
    kind = manifest.outputs.get(selector.output)
    if kind is None:
        raise ValueError(
            f"{selector}: step {selector.name!r} has no output {selector.output!r} "
            f"(outputs: {', '.join(manifest.outputs)})"
        )
    return kind


@dataclass(frozen=True)
class BindingScope:
    """What a property value may refer to while binding one workflow."""

    spec: WorkflowSpec
    manifests: Mapping[str, BlockManifest]
    defaults: Mapping[str, Any]
    models: ModelCatalog


def _check_value(prop: Property, value: Any, scope: BindingScope) -> None:
    if value is None:
        return
    if prop.check is not None:
        prop.check(value)
    if prop.model_tasks:
        check_model(value, prop.model_tasks, scope.models)


def _bind_inner(value: Any, scope: BindingScope) -> Binding:
    """A JSON object whose values may be `$inputs.<name>` parameter selectors."""
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object, got {value!r}")
    inner: dict[str, Selector] = {}
    for key, item in value.items():
        if is_selector(item):
            selector = parse_selector(item)
            if kind_of(selector, scope.spec, scope.manifests) != Kind.PARAMETER:
                raise ValueError(f"{key!r}: only workflow parameters may be used here, not {selector}")
            inner[key] = selector
    return Binding(literal=value, inner=inner)


def bind_value(prop: Property, value: Any, scope: BindingScope) -> Binding:
    """Bind one given property value; raises ValueError saying what is wrong."""
    if prop.parameters_inside and not is_selector(value):
        return _bind_inner(value, scope)
    if not is_selector(value):
        if prop.selector_only:
            raise ValueError(f"must be a selector such as $inputs.image, got {value!r}")
        _check_value(prop, value, scope)
        return Binding(literal=value)
    selector = parse_selector(value)
    if selector.is_wildcard:
        raise ValueError(f"wildcard selector {selector} is allowed only in workflow outputs")
    kind = kind_of(selector, scope.spec, scope.manifests)
    if not accepts(prop.kinds, kind):
        expected = " or ".join(k.value for k in prop.kinds)
        raise ValueError(f"expects {expected}, got {kind.value} from {selector}")
    if kind == Kind.PARAMETER:
        try:
            _check_value(prop, scope.defaults.get(selector.name), scope)
        except ValueError as error:
            raise ValueError(f"default of {selector}: {error}") from None
    return Binding(selector=selector)


def _given(step: StepSpec, manifest: BlockManifest) -> dict[str, Any]:
    """The step's properties under the block's own names (aliases resolved, ignored dropped)."""
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
    return given


def bind_step(step: StepSpec, manifest: BlockManifest, scope: BindingScope) -> BoundStep:
    """Every property of `step` bound to a literal (or its default) or a checked selector."""
    given = _given(step, manifest)
    bindings: dict[str, Binding] = {}
    for name, prop in manifest.properties.items():
        if name not in given:
            if prop.required:
                raise InvalidArgument(f"step {step.name!r}: property {name!r} is required by {manifest.type}")
            try:
                _check_value(prop, prop.default, scope)
            except ValueError as error:
                raise InvalidArgument(f"step {step.name!r}: property {name!r}: {error}") from None
            bindings[name] = Binding(literal=prop.default)
            continue
        try:
            bindings[name] = bind_value(prop, given[name], scope)
        except ValueError as error:
            raise InvalidArgument(f"step {step.name!r}: property {name!r}: {error}") from None
    return BoundStep(step.name, manifest, bindings)
