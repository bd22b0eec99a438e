"""The bare loop: one process, one image at a time, no services, no queues, no files written.

Read the file's bytes -> cv2.imdecode -> the compiled workflow -> JSON, for every image in turn,
with ONNX Runtime's threads left to ORT's own choice (one per core), as a user's loop leaves them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench.model import WorkflowRunner
from bench.workflows import BenchWorkflow

BATCH_SIZE = 1


@dataclass(frozen=True)
class BareRun:
    images: int
    seconds: float
    warm_s: float
    """Loading the model and three warm-up runs (not in `seconds`)."""
    batch_size: int
    intra_op_threads: int | None


def run_bare(paths: list[Path], workflow: BenchWorkflow, intra_op_threads: int | None = None) -> BareRun:
    started = time.perf_counter()
    runner = WorkflowRunner(workflow.definition, intra_op_threads=intra_op_threads, models=workflow.catalog())
    runner.warm(paths[0].read_bytes())
    warm_s = time.perf_counter() - started
    start = time.perf_counter()
    lines = 0
    for path in paths:
        lines += len(runner.run([path.read_bytes()]))
    seconds = time.perf_counter() - start
    if lines != len(paths):
        raise RuntimeError(f"the bare loop returned {lines} results for {len(paths)} images")
    return BareRun(len(paths), seconds, warm_s, BATCH_SIZE, intra_op_threads)
