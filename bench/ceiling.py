"""The orchestration ceiling: a job over a near-free model, so every second is Sluice's own.

The tiny classifier (`bench/tiny_model.py`) on N 64x64 JPEGs at the scheduler's default task
size. Staging the batch is timed but kept out of the job's figures (`bench.staging` measures
staging alone); the job is watched every 50 ms. Its two figures: the processing stage (the
job's created_at to the first GetJob with items_done == items_total) and the whole job (created_at
to ended_at as the scheduler recorded them: processing and the export stage). The export is then
downloaded (not timed) and checked: one ok record per image.
"""

from __future__ import annotations

from pathlib import Path

from bench.mesh import JobRun, staged_job
from bench.stack import LocalStack
from bench.workflows import BenchWorkflow

POLL_S = 0.05
BATCH_ID = "bench-tiny"
JOB_ID = "bench-tiny"


async def run_ceiling(
    stack: LocalStack,
    workflow: BenchWorkflow,
    images_dir: Path,
    images: int,
    export_dir: Path,
    timeout_s: float,
) -> JobRun:
    run = await staged_job(
        stack, workflow.workflow_id, images_dir, BATCH_ID, JOB_ID, images, export_dir, timeout_s, POLL_S
    )
    if run.failed:
        raise RuntimeError(f"{run.failed} of {run.records} records of the tiny job failed")
    return run
