"""compile_workflow: parse -> validate -> order -> build blocks, cached by content hash."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

from sluice.errors import InvalidArgument
from sluice.workflow.blocks.base import BlockContext
from sluice.workflow.executor import CompiledWorkflow, ReadyStep
from sluice.workflow.graph import execution_order
from sluice.workflow.spec import load_definition, parse_workflow
from sluice.workflow.validate import validate_workflow

_CACHE_SIZE = 64
_lock = threading.Lock()
_cache: OrderedDict[tuple[str, int | None], CompiledWorkflow] = OrderedDict()


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


def _compile(definition: dict[str, Any], digest: str, context: BlockContext) -> CompiledWorkflow:
    checked = validate_workflow(parse_workflow(definition))
    order = execution_order(checked.steps)
    steps = [ReadyStep(checked.steps[name], checked.steps[name].manifest.build(context)) for name in order]
    return CompiledWorkflow(digest, checked.image_input, checked.parameters, steps, checked.outputs)


def compile_workflow(
    definition: dict[str, Any] | str, *, intra_op_threads: int | None = None
) -> CompiledWorkflow:
    """Check a workflow definition and make it runnable; raises InvalidArgument when it is bad.

    Models are not loaded here; each loads on the first run that needs it.
    """
    loaded = load_definition(definition)
    key = (workflow_digest(loaded), intra_op_threads)
    with _lock:
        compiled = _cache.get(key)
        if compiled is not None:
            _cache.move_to_end(key)
            return compiled
    compiled = _compile(loaded, key[0], BlockContext(intra_op_threads=intra_op_threads))
    with _lock:
        _cache[key] = compiled
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled
