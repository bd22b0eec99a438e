"""The Ray Data way: `map_batches` with a pool of actors, each loading the workflow once.

Ray is optional (`pip install -e '.[bench]'`); `available()` says whether it can be imported.
The dataset is the list of file paths (`from_items`); each actor reads and decodes the bytes of
its batch itself, as a Sluice worker reads its task's images from the object store. One
`RaySession` (one `ray.init`) runs every workflow in turn.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from bench.model import ROOT, WorkflowRunner
from bench.workflows import BenchWorkflow


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
    actors: int
    batch_size: int
    threads_per_actor: int | None


class _RunBatch:
    """Ray's callable class: loaded once per actor, called once per batch."""

    def __init__(self, workflow: BenchWorkflow, threads: int | None) -> None:
        self._runner = WorkflowRunner(
            workflow.definition, intra_op_threads=threads, models=workflow.catalog()
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        encoded = [Path(str(path)).read_bytes() for path in batch["path"]]
        lines = self._runner.run(encoded)
        return {"path": batch["path"], "result": np.array(lines, dtype=object)}


class RaySession:
    """`ray.init` on enter (its time in `init_s`), `ray.shutdown` on exit.

    `temp_dir` holds Ray's session files (default /tmp/ray); keep its path short (unix sockets).
    """

    def __init__(self, temp_dir: Path | None = None) -> None:
        self.temp_dir = temp_dir
        self.cpus = os.cpu_count() or 1
        self.init_s = 0.0

    def __enter__(self) -> RaySession:
        import ray

        started = time.perf_counter()
        ray.init(
            num_cpus=self.cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            _temp_dir=str(self.temp_dir) if self.temp_dir else None,
            runtime_env={
                "env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
            },
        )
        self.init_s = time.perf_counter() - started
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        import ray

        ray.shutdown()

    def run(
        self,
        paths: list[Path],
        workflow: BenchWorkflow,
        actors: int,
        batch_size: int,
        threads_per_actor: int | None,
    ) -> RayRun:
        """Run `workflow` over `paths` with `actors` actors; raises when Ray fails."""
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        start = time.perf_counter()
        first: float | None = None
        count = 0
        rows = [{"path": str(p)} for p in paths]
        blocks = max(1, -(-len(rows) // batch_size))  # one block per batch: no re-bundling
        dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            _RunBatch,
            fn_constructor_kwargs={"workflow": workflow, "threads": threads_per_actor},
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=self.cpus / actors,
        )
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            first = time.perf_counter() - start if first is None else first
            count += len(batch["result"])
        seconds = time.perf_counter() - start
        if count != len(paths):
            raise RuntimeError(f"ray returned {count} results for {len(paths)} images")
        return RayRun(count, seconds, first or seconds, actors, batch_size, threads_per_actor)
