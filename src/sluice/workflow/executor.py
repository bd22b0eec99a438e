"""Running a compiled workflow over a batch of images, step by step in dependency order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sluice.errors import InvalidArgument
from sluice.workflow.blocks.base import Block
from sluice.workflow.kinds import Kind
from sluice.workflow.validate import BoundOutput, BoundStep


@dataclass(frozen=True)
class ReadyStep:
    """A validated step with its block built."""

    bound: BoundStep
    block: Block


def _check_images(images: Sequence[np.ndarray]) -> None:
    for index, image in enumerate(images):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise InvalidArgument(f"image {index}: expected a uint8 numpy array")
        if image.ndim != 3 or image.shape[2] != 3:
            raise InvalidArgument(f"image {index}: expected shape [H, W, 3], got {image.shape}")


class CompiledWorkflow:
    """A checked workflow, ready to run; safe to share between threads."""

    def __init__(
        self,
        digest: str,
        image_input: str,
        parameters: Mapping[str, Any],
        steps: Sequence[ReadyStep],
        outputs: Sequence[BoundOutput],
    ) -> None:
        self.digest = digest
        self.image_input = image_input
        self.parameters = dict(parameters)
        self._steps = tuple(steps)
        self._outputs = tuple(outputs)
        self.output_names: tuple[str, ...] = tuple(o.name for o in outputs)
        self.image_outputs: tuple[str, ...] = tuple(o.name for o in outputs if o.kind == Kind.IMAGE)

    def _parameters(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        values = dict(self.parameters)
        for name, value in (params or {}).items():
            if name not in self.parameters:
                known = ", ".join(sorted(self.parameters)) or "none"
                raise InvalidArgument(f"unknown parameter {name!r}; workflow parameters: {known}")
            values[name] = value
        return values

    def _resolve(
        self,
        step: BoundStep,
        parameters: Mapping[str, Any],
        images: Sequence[np.ndarray],
        results: Mapping[str, list[dict[str, Any]]],
    ) -> list[dict[str, Any]]:
        """One dict of property values per image for `step`."""
        shared: dict[str, Any] = {}
        per_image: dict[str, list[Any]] = {}
        for name, binding in step.bindings.items():
            selector = binding.selector
            if selector is None:
                shared[name] = binding.literal
            elif selector.source == "steps":
                per_image[name] = [out[selector.output] for out in results[selector.name]]
            elif selector.name == self.image_input:
                per_image[name] = list(images)
            else:
                value = parameters[selector.name]
                prop = step.manifest.properties[name]
                try:
                    if value is None and prop.required:
                        raise ValueError(f"parameter {selector.name!r} has no value")
                    if value is not None and prop.check is not None:
                        prop.check(value)
                except ValueError as error:
                    raise InvalidArgument(f"step {step.name!r}: property {name!r}: {error}") from None
                shared[name] = value
        return [
            {**shared, **{name: values[i] for name, values in per_image.items()}} for i in range(len(images))
        ]

    def run(
        self, images: Sequence[np.ndarray], params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """BGR uint8 images [H, W, 3] -> one dict per image mapping output name -> value.

        Image outputs are BGR arrays; detections are `sv.Detections` in that image's pixels.
        """
        _check_images(images)
        if not images:
            return []
        parameters = self._parameters(params)
        results: dict[str, list[dict[str, Any]]] = {}
        for ready in self._steps:
            batch = self._resolve(ready.bound, parameters, images, results)
            outputs = ready.block.run(batch)
            if len(outputs) != len(images):
                raise RuntimeError(
                    f"step {ready.bound.name!r} returned {len(outputs)} results for {len(images)} images"
                )
            results[ready.bound.name] = outputs
        return [self._collect(index, images, parameters, results) for index in range(len(images))]

    def _collect(
        self,
        index: int,
        images: Sequence[np.ndarray],
        parameters: Mapping[str, Any],
        results: Mapping[str, list[dict[str, Any]]],
    ) -> dict[str, Any]:
        collected: dict[str, Any] = {}
        for output in self._outputs:
            selector = output.selector
            if selector.source == "steps":
                collected[output.name] = results[selector.name][index][selector.output]
            elif selector.name == self.image_input:
                collected[output.name] = images[index]
            else:
                collected[output.name] = parameters[selector.name]
        return collected
