"""The state of one run: the elements each lineage holds, and every step's outputs by element.

Elements are indexed by position: (image,) for an input image, (image, child) for a child of
a fan-out step, and so on. A step's outputs are stored per element index; a fan-out step's
outputs are stored per child index, with the number of children of each parent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import supervision as sv

from sluice.workflow.binding import BoundStep
from sluice.workflow.blocks.base import Child, Element
from sluice.workflow.detections import with_ids
from sluice.workflow.kinds import Kind
from sluice.workflow.lineage import Lineage

Index = tuple[int, ...]


def _with_ids(step: BoundStep, outputs: dict[str, Any], parent_id: str) -> dict[str, Any]:
    """Outputs with ids on every detection (so later steps and records can refer to them)."""
    missing = step.manifest.outputs.keys() - outputs.keys()
    if missing:
        raise RuntimeError(f"step {step.name!r} did not return its outputs {sorted(missing)}")
    for name, kind in step.manifest.outputs.items():
        value = outputs[name]
        if kind == Kind.OBJECT_DETECTION and isinstance(value, sv.Detections):
            outputs[name] = with_ids(value, parent_id)
    return outputs


class RunState:
    """What one run has computed so far. Steps of one layer read it from several threads;
    only the thread driving the run writes it, between layers."""

    def __init__(
        self,
        images: Sequence[np.ndarray],
        metadata: Sequence[Mapping[str, Any]],
        image_input: str,
        parameters: Mapping[str, Any],
        steps: Mapping[str, BoundStep],
    ) -> None:
        self.images = images
        self.metadata = metadata
        self.image_input = image_input
        self.parameters = parameters
        self._steps = steps
        self.values: dict[str, dict[Index, dict[str, Any]]] = {}
        self.children: dict[str, dict[Index, int]] = {}
        self._elements: dict[Lineage, list[Element]] = {
            (): [
                Element((i,), str(meta.get("image_id") or image_input), meta)
                for i, meta in enumerate(metadata)
            ]
        }

    def elements(self, lineage: Lineage) -> list[Element]:
        return self._elements[lineage]

    def children_of(self, fan_out_step: str, index: Index) -> range:
        return range(self.children[fan_out_step].get(index, 0))

    def inputs_for(self, step: BoundStep, elements: Sequence[Element]) -> list[dict[str, Any]]:
        """One dict of property values per element for `step`."""
        shared: dict[str, Any] = {}
        per_element: dict[str, list[Any]] = {}
        for name, binding in step.bindings.items():
            selector = binding.selector
            if selector is not None and selector.source == "steps":
                source = self.values[selector.name]
                if step.manifest.properties[name].dimensionality_offset:
                    fan_out = self._steps[selector.name].output_lineage[-1]
                    per_element[name] = [
                        [source[(*e.index, j)][selector.output] for j in self.children_of(fan_out, e.index)]
                        for e in elements
                    ]
                else:
                    per_element[name] = [source[e.index][selector.output] for e in elements]
            elif selector is not None and selector.name == self.image_input:
                per_element[name] = [self.images[e.index[0]] for e in elements]
            elif selector is not None and selector.name not in self.parameters:
                per_element[name] = [dict(e.metadata) for e in elements]
            elif selector is not None:
                shared[name] = self.parameters[selector.name]
            elif binding.inner:
                inner = {key: self.parameters[s.name] for key, s in binding.inner.items()}
                shared[name] = {**binding.literal, **inner}
            else:
                shared[name] = binding.literal
        return [
            {**shared, **{name: values[i] for name, values in per_element.items()}}
            for i in range(len(elements))
        ]

    def store(self, step: BoundStep, elements: Sequence[Element], outputs: Sequence[Any]) -> None:
        """Keep a step's outputs (for a fan-out step: its children, as new elements)."""
        if len(outputs) != len(elements):
            raise RuntimeError(
                f"step {step.name!r} returned {len(outputs)} results for {len(elements)} inputs"
            )
        stored = self.values.setdefault(step.name, {})
        if not step.manifest.output_dimensionality_offset:
            for element, output in zip(elements, outputs, strict=True):
                stored[element.index] = _with_ids(step, output, element.id)
            return
        counts = self.children.setdefault(step.name, {})
        made: list[Element] = []
        for element, children in zip(elements, outputs, strict=True):
            counts[element.index] = len(children)
            for j, child in enumerate(children):
                if not isinstance(child, Child):
                    raise RuntimeError(f"step {step.name!r} must return Child objects, got {type(child)}")
                child_element = Element((*element.index, j), child.id, element.metadata)
                stored[child_element.index] = _with_ids(step, child.outputs, child.id)
                made.append(child_element)
        self._elements[step.output_lineage] = made
