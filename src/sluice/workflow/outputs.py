"""Collecting a run's outputs per input image, nested by lineage (see README.md, "Nesting").

An output that selects a value with one value per input image gives that value; one that
selects a value made per child of a fan-out step gives a list with one entry per child, in
the children's order (for a crop step: the order of its detections); two fan-outs deep, a list
of lists. `$steps.x.*` gives a dict of all of step x's outputs, nested the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sluice.workflow.binding import BoundStep
from sluice.workflow.lineage import Lineage
from sluice.workflow.runtime import Index, RunState
from sluice.workflow.selectors import Selector
from sluice.workflow.validate import BoundOutput


def _nested(state: RunState, lineage: Lineage, index: Index, pick: Callable[[Index], Any]) -> Any:
    if len(index) == len(lineage) + 1:
        return pick(index)
    fan_out = lineage[len(index) - 1]
    return [_nested(state, lineage, (*index, j), pick) for j in state.children_of(fan_out, index)]


def _picker(values: Mapping[Index, dict[str, Any]], selector: Selector) -> Callable[[Index], Any]:
    """The value an output takes from one element's outputs (all of them for a wildcard)."""
    if selector.is_wildcard:
        return lambda index: dict(values[index])
    return lambda index: values[index][selector.output]


def output_lineage(output: BoundOutput, steps: Mapping[str, BoundStep]) -> Lineage:
    if output.selector.source == "inputs":
        return ()
    return steps[output.selector.name].output_lineage


def collect_outputs(
    state: RunState, outputs: tuple[BoundOutput, ...], steps: Mapping[str, BoundStep], image: int
) -> dict[str, Any]:
    """The outputs of input image number `image`, by output name."""
    collected: dict[str, Any] = {}
    for output in outputs:
        selector = output.selector
        if selector.source == "inputs":
            if selector.name == state.image_input:
                collected[output.name] = state.images[image]
            elif selector.name in state.parameters:
                collected[output.name] = state.parameters[selector.name]
            else:
                collected[output.name] = dict(state.metadata[image])
            continue
        pick = _picker(state.values[selector.name], selector)
        lineage = output_lineage(output, steps)
        collected[output.name] = _nested(state, lineage, (image,), pick)
    return collected
