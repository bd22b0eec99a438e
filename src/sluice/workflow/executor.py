"""Running a compiled workflow over a batch of images, layer by layer.

The steps of one layer do not depend on each other and run at the same time in a small
thread pool; each step gets the whole batch of its elements (every input image, or every crop
of every image) in one call, so model blocks batch across the images of a task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from sluice.errors import InvalidArgument
from sluice.workflow.binding import BoundStep
from sluice.workflow.blocks.base import Block, BlockContext, Element
from sluice.workflow.kinds import Kind
from sluice.workflow.outputs import collect_outputs, output_lineage
from sluice.workflow.parameters import ParameterSpec, parameter_uses, resolve_parameters
from sluice.workflow.runtime import RunState
from sluice.workflow.validate import BoundOutput

MAX_PARALLEL_STEPS = 4
DEFAULT_STREAM = "default"


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


def _check_metadata(metadata: Sequence[Mapping[str, Any]] | None, count: int) -> list[Mapping[str, Any]]:
    if metadata is None:
        return [{} for _ in range(count)]
    if len(metadata) != count:
        raise InvalidArgument(f"metadata: expected one entry per image ({count}), got {len(metadata)}")
    for index, entry in enumerate(metadata):
        if not isinstance(entry, Mapping):
            raise InvalidArgument(f"metadata {index}: expected a dict, got {type(entry).__name__}")
    return list(metadata)


class CompiledWorkflow:
    """A checked workflow, ready to run; safe to share between threads."""

    def __init__(
        self,
        digest: str,
        image_input: str,
        parameters: Mapping[str, ParameterSpec],
        layers: Sequence[Sequence[ReadyStep]],
        outputs: Sequence[BoundOutput],
        context: BlockContext,
    ) -> None:
        self.digest = digest
        self.image_input = image_input
        self.image_input_name = image_input
        """The name of the workflow's image input (images are passed to `run` by position)."""
        self.parameter_specs = dict(parameters)
        self.parameters: dict[str, Any] = {name: spec.default for name, spec in parameters.items()}
        """Parameter name -> default value (None when it has none)."""
        self._layers = tuple(tuple(layer) for layer in layers)
        self._steps = {ready.bound.name: ready.bound for layer in self._layers for ready in layer}
        self._uses = parameter_uses(self._steps)
        self._outputs = tuple(outputs)
        self._context = context
        self.output_names: tuple[str, ...] = tuple(o.name for o in outputs)
        self.image_outputs: tuple[str, ...] = tuple(
            o.name for o in outputs if o.kind == Kind.IMAGE and not output_lineage(o, self._steps)
        )
        """Outputs that are one image per input image (what a worker saves as image files)."""

    @property
    def step_names(self) -> tuple[str, ...]:
        """Steps in the order they run."""
        return tuple(ready.bound.name for layer in self._layers for ready in layer)

    def _run_step(self, ready: ReadyStep, state: RunState) -> tuple[list[Element], list[Any]]:
        elements = state.elements(ready.bound.lineage)
        if not elements:
            return elements, []
        outputs = ready.block.run(state.inputs_for(ready.bound, elements), elements)
        return elements, list(outputs)

    def _run_layer(self, layer: Sequence[ReadyStep], state: RunState) -> None:
        if len(layer) == 1:
            results = [self._run_step(layer[0], state)]
        else:
            with ThreadPoolExecutor(min(len(layer), MAX_PARALLEL_STEPS), "sluice-step") as pool:
                results = list(pool.map(lambda ready: self._run_step(ready, state), layer))
        for ready, (elements, outputs) in zip(layer, results, strict=True):
            state.store(ready.bound, elements, outputs)

    def check_parameters(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Every parameter's value for a run with `params` (defaults filled in).

        Raises InvalidArgument naming an unknown parameter or one of the wrong type, as `run`
        would, so a job can be refused before any image is processed.
        """
        return resolve_parameters(self.parameter_specs, self._uses, params, self._context.models)

    def run(
        self,
        images: Sequence[np.ndarray],
        params: Mapping[str, Any] | None = None,
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """BGR uint8 images [H, W, 3] -> one dict per image mapping output name -> value.

        `params` override parameter defaults (unknown names and wrong types raise
        InvalidArgument). `metadata`, one dict per image, may carry `video_id` (the stream a
        tracker keeps its state for; "default" when absent), `frame_number` and `image_id` (the
        `parent_id` of what is found in the image; the image input's name when absent).
        Image outputs are BGR arrays; detections are `sv.Detections` in the pixels of the
        image (or crop) they were found in; outputs made per crop are nested in lists (see
        README.md).
        """
        _check_images(images)
        entries = _check_metadata(metadata, len(images))
        parameters = resolve_parameters(self.parameter_specs, self._uses, params, self._context.models)
        if not images:
            return []
        state = RunState(images, entries, self.image_input, parameters, self._steps)
        for layer in self._layers:
            self._run_layer(layer, state)
        return [collect_outputs(state, self._outputs, self._steps, i) for i in range(len(images))]

    def end_stream(self, video_id: str = DEFAULT_STREAM) -> None:
        """Forget what stateful blocks (trackers) keep for one video stream."""
        for layer in self._layers:
            for ready in layer:
                end = getattr(ready.block, "end_stream", None)
                if callable(end):
                    end(video_id)
