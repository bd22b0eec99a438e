"""Workflow parameters: declared kinds, and the values a run gets (checked, defaults filled)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sluice.errors import InvalidArgument
from sluice.models.catalog import ModelCatalog
from sluice.workflow.binding import BoundStep
from sluice.workflow.blocks.base import Property
from sluice.workflow.model_checks import check_model


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


KIND_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": _is_number,
    "float_zero_to_one": lambda v: _is_number(v) and 0 <= v <= 1,
    "boolean": lambda v: isinstance(v, bool),
    "list_of_values": lambda v: isinstance(v, list),
    "dictionary": lambda v: isinstance(v, dict),
    "roboflow_model_id": lambda v: isinstance(v, str),
    "*": lambda v: True,
}
"""Kinds a parameter may declare that are checked; other kind names are accepted unchecked."""


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: Any = None
    kinds: tuple[str, ...] = ()

    def check(self, value: Any) -> None:
        """Raises ValueError when `value` matches none of the declared (checkable) kinds."""
        checks = [KIND_CHECKS[kind] for kind in self.kinds if kind in KIND_CHECKS]
        if value is None or not checks or any(check(value) for check in checks):
            return
        raise ValueError(f"expects {' or '.join(self.kinds)}, got {value!r}")


@dataclass(frozen=True)
class ParameterUse:
    """A step property wired to a parameter."""

    step: str
    name: str
    prop: Property


def parameter_uses(steps: Mapping[str, BoundStep]) -> dict[str, list[ParameterUse]]:
    """Parameter name -> the step properties it feeds directly."""
    uses: dict[str, list[ParameterUse]] = {}
    for step in steps.values():
        for name, binding in step.bindings.items():
            selector = binding.selector
            if selector is not None and selector.source == "inputs":
                prop = step.manifest.properties[name]
                uses.setdefault(selector.name, []).append(ParameterUse(step.name, name, prop))
    return uses


def _check_use(use: ParameterUse, parameter: str, value: Any, models: ModelCatalog) -> None:
    try:
        if value is None:
            if use.prop.required:
                raise ValueError(f"parameter {parameter!r} has no value")
            return
        if use.prop.check is not None:
            use.prop.check(value)
        if use.prop.model_tasks:
            check_model(value, use.prop.model_tasks, models)
    except ValueError as error:
        raise InvalidArgument(f"step {use.step!r}: property {use.name!r}: {error}") from None


def resolve_parameters(
    declared: Mapping[str, ParameterSpec],
    uses: Mapping[str, list[ParameterUse]],
    given: Mapping[str, Any] | None,
    models: ModelCatalog,
) -> dict[str, Any]:
    """Every declared parameter's value for one run: given, or else its default.

    Raises InvalidArgument naming an unknown parameter, or the parameter (and the step
    property it feeds) whose value is of the wrong type.
    """
    values = {name: spec.default for name, spec in declared.items()}
    for name, value in (given or {}).items():
        spec = declared.get(name)
        if spec is None:
            known = ", ".join(sorted(declared)) or "none"
            raise InvalidArgument(f"unknown parameter {name!r}; workflow parameters: {known}")
        try:
            spec.check(value)
        except ValueError as error:
            raise InvalidArgument(f"parameter {name!r}: {error}") from None
        values[name] = value
    for name, value in values.items():
        for use in uses.get(name, ()):
            _check_use(use, name, value, models)
    return values
