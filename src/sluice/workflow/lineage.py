"""Dimensionality: which elements each step runs on (input images, or crops of crops ...).

A lineage is the tuple of fan-out steps a value went through: () for one value per input
image, ("crop",) for one value per child of step 'crop'. A step runs on the lineage of its
inputs, which must agree; a property with `dimensionality_offset=1` takes the children of
the step's own elements (it reads one lineage deeper). A fan-out step's outputs are one
lineage deeper than the step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from sluice.errors import InvalidArgument
from sluice.workflow.binding import BoundStep
from sluice.workflow.selectors import Selector

Lineage = tuple[str, ...]


def describe(lineage: Lineage) -> str:
    if not lineage:
        return "one value per input image"
    return f"one value per child of step {lineage[-1]!r}"


def source_lineage(selector: Selector, steps: Mapping[str, BoundStep], image_input: str) -> Lineage | None:
    """The lineage of what a selector reads; None for values shared by every element."""
    if selector.source == "inputs":
        return () if selector.name == image_input else None
    return steps[selector.name].output_lineage


def _lineage_of(step: BoundStep, steps: Mapping[str, BoundStep], image_input: str) -> Lineage:
    found: tuple[Lineage, str, Selector] | None = None
    for prop_name, binding in step.bindings.items():
        selector = binding.selector
        if selector is None:
            continue
        source = source_lineage(selector, steps, image_input)
        if source is None:
            continue
        offset = step.manifest.properties[prop_name].dimensionality_offset
        if offset > len(source):
            raise InvalidArgument(
                f"step {step.name!r}: property {prop_name!r}: expects one list entry per child of a "
                f"fan-out step (such as a crop per detection), but {selector} gives {describe(source)}"
            )
        candidate = source[: len(source) - offset]
        if found is None:
            found = (candidate, prop_name, selector)
        elif candidate != found[0]:
            first_lineage, first_name, first_selector = found
            raise InvalidArgument(
                f"step {step.name!r}: property {prop_name!r}: {selector} gives {describe(source)}, "
                f"which does not match property {first_name!r} ({first_selector}: "
                f"{describe(first_lineage)} for this step)"
            )
    return found[0] if found is not None else ()


def assign_lineages(
    steps: Mapping[str, BoundStep], order: Sequence[str], image_input: str
) -> dict[str, BoundStep]:
    """Every step with its lineage set, visiting them in `order` (dependencies first)."""
    done: dict[str, BoundStep] = {}
    for name in order:
        step = steps[name]
        done[name] = dataclasses.replace(step, lineage=_lineage_of(step, done, image_input))
    return {name: done[name] for name in steps}
