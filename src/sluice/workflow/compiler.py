"""compile_workflow: a pipeline of plain functions, cached by content hash.

parse (shape) -> validate (inputs, block types, properties, selectors, kinds, models) ->
graph (layers, refusing cycles) -> lineage (what each step runs on) -> build (each block
gets the parts of the context its manifest names).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

from sluice.errors import InvalidArgument
from sluice.models.catalog import ModelCatalog
from sluice.workflow.binding import BoundStep
from sluice.workflow.blocks.base import Block, BlockContext
from sluice.workflow.executor import CompiledWorkflow, ReadyStep
from sluice.workflow.graph import execution_layers
from sluice.workflow.lineage import assign_lineages
from sluice.workflow.spec import load_definition, parse_workflow
from sluice.workflow.validate import validate_workflow

_CACHE_SIZE = 64
_lock = threading.Lock()
_cache: OrderedDict[tuple[str, int | None, int], CompiledWorkflow] = OrderedDict()


def canonical_json(definition: dict[str, Any] | str) -> str:
    """A definition as compact JSON with sorted keys, the form workflows are stored and hashed in."""
    loaded = load_definition(definition)
    try:
        return json.dumps(loaded, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise InvalidArgument(f"workflow is not JSON-serialisable: {error}") from None


def workflow_digest(definition: dict[str, Any]) -> str:
    """The sha256 of a definition's canonical JSON (key order and spacing do not matter)."""
    return hashlib.sha256(canonical_json(definition).encode()).hexdigest()


def _build(step: BoundStep, context: BlockContext) -> Block:
    """The step's block, built with what its manifest names from the context."""
    try:
        return step.manifest.create(context)
    except ValueError as error:
        raise InvalidArgument(
            f"step {step.name!r}: property 'type': {step.manifest.type} cannot run here: {error}"
        ) from None


def _compile(definition: dict[str, Any], digest: str, context: BlockContext) -> CompiledWorkflow:
    checked = validate_workflow(parse_workflow(definition), context.models)
    layers = execution_layers(checked.steps)
    steps = assign_lineages(checked.steps, [name for layer in layers for name in layer], checked.image_input)
    ready = [[ReadyStep(steps[name], _build(steps[name], context)) for name in layer] for layer in layers]
    return CompiledWorkflow(digest, checked.image_input, checked.parameters, ready, checked.outputs, context)


def compile_workflow(
    definition: dict[str, Any] | str,
    *,
    intra_op_threads: int | None = None,
    models: ModelCatalog | None = None,
) -> CompiledWorkflow:
    """Check a workflow definition and make it runnable; raises InvalidArgument when it is bad.

    `models` resolves model ids (the built-in catalog when None). Models are not loaded here;
    each loads on the first run that needs it. Compiled workflows are cached by content, thread
    count and catalog (a workflow compiled against another catalog is compiled again).
    """
    loaded = load_definition(definition)
    key = (workflow_digest(loaded), intra_op_threads, 0 if models is None else id(models))
    with _lock:
        compiled = _cache.get(key)
        if compiled is not None:
            _cache.move_to_end(key)
            return compiled
    context = BlockContext(intra_op_threads=intra_op_threads)
    if models is not None:
        context = BlockContext(intra_op_threads=intra_op_threads, models=models)
    compiled = _compile(loaded, key[0], context)
    with _lock:
        _cache[key] = compiled
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled
