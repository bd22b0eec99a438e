"""The Ray Data way: `map_batches` with a pool of actors, each loading the workflow once.

Ray is optional (`pip install -e '.[bench]'`); `available()` says whether it can be imported.
The dataset is the list of file paths (`from_items`); each actor reads and decodes the bytes of
its batch itself, as a Sluice worker reads its task's images from the object store.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.model import ROOT, WorkflowRunner


def available() -> bool:
    """True when `ray.data` can be imported."""
    return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("ray.data") is not None


@dataclass(frozen=True)
class RayRun:
    images: int
    seconds: float
    """From building the dataset to the last batch received (actor start and model load included)."""
    first_batch_s: float
    """From building the dataset to the first batch of results received."""
    init_s: float
    """`ray.init` (not included in `seconds`, as `sluice up` is not in the mesh figures)."""
    actors: int
    batch_size: int
    threads_per_actor: int | None


class _DetectBatch:
    """Ray's callable class: loaded once per actor, called once per batch."""

    def __init__(self, definition: str, threads: int | None) -> None:
        self._runner = WorkflowRunner(definition, intra_op_threads=threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        encoded = [Path(str(path)).read_bytes() for path in batch["path"]]
        lines = self._runner.run(encoded)
        return {"path": batch["path"], "result": np.array(lines, dtype=object)}


def run_ray(
    paths: list[Path],
    definition: str,
    actors: int,
    batch_size: int,
    threads_per_actor: int | None,
    temp_dir: Path | None = None,
) -> RayRun:
    """Run the workflow over `paths` with `actors` actors; raises when Ray fails.

    `temp_dir` holds Ray's session files (default /tmp/ray); keep its path short (unix sockets).
    """
    import ray
    import ray.data

    cpus = os.cpu_count() or 1
    started = time.perf_counter()
    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        _temp_dir=str(temp_dir) if temp_dir else None,
        runtime_env={
            "env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        },
    )
    init_s = time.perf_counter() - started
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        start = time.perf_counter()
        first: float | None = None
        count = 0
        rows = [{"path": str(p)} for p in paths]
        blocks = max(1, -(-len(rows) // batch_size))  # one block per batch: no re-bundling
        dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            _DetectBatch,
            fn_constructor_kwargs={"definition": definition, "threads": threads_per_actor},
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cpus / actors,
        )
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            first = time.perf_counter() - start if first is None else first
            count += len(batch["result"])
        seconds = time.perf_counter() - start
    finally:
        ray.shutdown()
    if count != len(paths):
        raise RuntimeError(f"ray returned {count} results for {len(paths)} images")
    return RayRun(count, seconds, first or seconds, init_s, actors, batch_size, threads_per_actor)


def describe(run: RayRun) -> dict[str, Any]:
    return {
        "actors": run.actors,
        "batch_size": run.batch_size,
        "threads_per_actor": run.threads_per_actor,
    }
