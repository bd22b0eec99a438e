"""The order steps run in: dependencies first, refusing cycles."""

from __future__ import annotations

from collections.abc import Mapping

from sluice.errors import InvalidArgument
from sluice.workflow.validate import BoundStep


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


def execution_order(steps: Mapping[str, BoundStep]) -> list[str]:
    """Step names so that each comes after every step it reads from (ties: definition order)."""
    waiting = {name: step.upstream() for name, step in steps.items()}
    order: list[str] = []
    while waiting:
        ready = [name for name, needs in waiting.items() if not needs]
        if not ready:
            cycle = " -> ".join(repr(name) for name in _find_cycle(waiting))
            raise InvalidArgument(f"steps form a cycle: {cycle}")
        for name in ready:
            order.append(name)
            del waiting[name]
        for needs in waiting.values():
            needs.difference_update(ready)
    return order
