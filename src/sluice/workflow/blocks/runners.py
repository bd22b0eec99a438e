"""Model runners a block keeps, one per model spec, built on first use and shared by threads."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from sluice.models.catalog import ModelCatalog
from sluice.models.spec import ModelSpec

Runner = TypeVar("Runner")


class RunnerCache(Generic[Runner]):
    """Runners by model id, looked up in `models`; rebuilt when the catalog's spec changes."""

    def __init__(
        self,
        models: ModelCatalog,
        load: Callable[[ModelSpec, int | None], Runner],
        intra_op_threads: int | None = None,
    ) -> None:
        self._models = models
        self._load = load
        self._threads = intra_op_threads
        self._lock = threading.Lock()
        self._runners: dict[str, tuple[ModelSpec, Runner]] = {}

    def get(self, model_id: str) -> Runner:
        spec = self._models.spec(model_id)
        with self._lock:
            cached = self._runners.get(model_id)
            if cached is not None and cached[0] is spec:
                return cached[1]
        runner = self._load(spec, self._threads)
        with self._lock:
            self._runners[model_id] = (spec, runner)
        return runner


def indices_by_model(batch: Sequence[dict[str, Any]]) -> dict[str, list[int]]:
    """The positions in `batch` of the items of each model id, so each model runs once."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(batch):
        groups[item["model_id"]].append(index)
    return groups
