"""The order steps run in: layers of steps whose inputs are all ready, refusing cycles."""

from __future__ import annotations

from collections.abc import Mapping

from sluice.errors import InvalidArgument
from sluice.workflow.binding import BoundStep


def _find_cycle(waiting: Mapping[str, set[str]]) -> list[str]:
    """A cycle among steps that all still wait on something, as a closed path."""
    path: list[str] = []
    position: dict[str, int] = {}
    node = min(waiting)
    while node not in position:
        position[node] = len(path)
        path.append(node)
        node = min(waiting[node])
    return [*path[position[node] :], node]


def execution_layers(steps: Mapping[str, BoundStep]) -> list[list[str]]:
    """Steps in layers: each step's inputs come from earlier layers, so the steps of one layer
    may run at the same time (within a layer: definition order)."""
    waiting = {name: step.upstream() for name, step in steps.items()}
    layers: list[list[str]] = []
    while waiting:
        ready = [name for name, needs in waiting.items() if not needs]
        if not ready:
            path = _find_cycle(waiting)
            cycle = " -> ".join(repr(name) for name in path)
            first, second = path[0], path[1]
            prop, selector = next(
                (prop, b.selector)
                for prop, b in steps[first].bindings.items()
                if b.selector is not None and b.selector.source == "steps" and b.selector.name == second
            )
            raise InvalidArgument(
                f"steps form a cycle: {cycle} (step {first!r} property {prop!r} reads {selector})"
            )
        layers.append(ready)
        for name in ready:
            del waiting[name]
        for needs in waiting.values():
            needs.difference_update(ready)
    return layers


def execution_order(steps: Mapping[str, BoundStep]) -> list[str]:
    """Step names so that each comes after every step it reads from (the layers, flattened)."""
    return [name for layer in execution_layers(steps) for name in layer]
