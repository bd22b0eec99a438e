"""Jobs on a local stack, driven by the `sluice` CLI as a user drives them, watched over gRPC.

`run_job` submits a job with `process-images-with-workflow --wait` while a `JobWatcher` polls
GetJob; `staged_job` times stage -> process -> export as three CLI subprocesses, as a user would
type them. "Submission" is the job's `created_at` as the scheduler recorded it.

The CLI helpers and the watcher are re-exported here for the other benches (video, dashboard).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

from bench.stack import CliError, LocalStack, cli, cli_command, log_tails, sluice_down
from bench.watch import JobWatcher, since
from sluice.job_states import SUCCEEDED
from sluice.v1 import scheduler_pb2

__all__ = [
    "CliError",
    "JobRun",
    "JobWatcher",
    "cli",
    "cli_command",
    "log_tails",
    "run_job",
    "sluice_down",
    "staged_job",
]


@dataclass(frozen=True)
class JobRun:
    images: int
    processing_s: float | None
    """Job submission to the processing stage's items_done == items_total (GetJob polls)."""
    job_s: float | None
    """The job's created_at to its ended_at (processing and export), as the scheduler recorded them."""
    tasks: int
    stage_s: float = 0.0
    """`create-batch-of-images`, CLI start to exit (0 when the batch was staged before)."""
    process_s: float = 0.0
    """`process-images-with-workflow --wait`, CLI start to exit (includes the export stage)."""
    export_s: float = 0.0
    """`export-batch`: download and unpack of the export archives (0 when not downloaded)."""
    records: int = 0
    failed: int = 0
    """Records of the export, and how many are not ok (when downloaded)."""

    @property
    def total_s(self) -> float:
        """Stage + process + export, as the user waited for them."""
        return self.stage_s + self.process_s + self.export_s


def count_records(export_dir: Path) -> tuple[int, int]:
    """(records, failed records) in the unpacked export's results.jsonl."""
    results = export_dir / "results.jsonl"
    if not results.is_file():
        raise RuntimeError(f"the export has no results.jsonl: {sorted(p.name for p in export_dir.iterdir())}")
    records = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    return len(records), sum(r.get("status") != "ok" for r in records)


async def stage_batch(stack: LocalStack, images_dir: Path, batch_id: str, timeout_s: float) -> float:
    """`sluice data-staging create-batch-of-images`; returns its seconds."""
    start = time.perf_counter()
    args = ("data-staging", "create-batch-of-images", "--images-dir", str(images_dir), "--batch-id", batch_id)
    await stack.cli(*args, timeout_s=timeout_s)
    return time.perf_counter() - start


async def run_job(
    stack: LocalStack,
    workflow_id: str,
    batch_id: str,
    job_id: str,
    images: int,
    timeout_s: float,
    poll_s: float = 0.1,
) -> tuple[JobRun, float]:
    """Submit a job and wait for it (`--wait`) while polling GetJob; (its figures, CLI seconds).

    Raises when the job does not complete or processes another number of images than `images`.
    """
    watcher = JobWatcher(stack.scheduler_address, stack.api_key, job_id, poll_s=poll_s)
    watching = asyncio.create_task(watcher.run())
    try:
        start = time.perf_counter()
        try:
            out = await stack.cli(
                *("batch-processing", "process-images-with-workflow", "--workflow-id", workflow_id),
                *("--batch-id", batch_id, "--job-id", job_id, "--wait"),
                timeout_s=timeout_s,
            )
        except CliError as error:
            raise CliError(f"{error}; the job was last seen as {watcher.last_seen}") from None
        seconds = time.perf_counter() - start
        await asyncio.wait_for(watching, timeout=10)
    finally:
        if not watching.done():
            watching.cancel()
    job = watcher.job
    if job is None or job.state not in SUCCEEDED:
        raise RuntimeError(f"the job did not complete:\n{out}\nlast seen as {watcher.last_seen}")
    stage = next((s for s in job.stages if s.name == "processing"), scheduler_pb2.Stage())
    if stage.items_total != images:
        raise RuntimeError(f"the job processed {stage.items_total} images of {images}")
    run = JobRun(
        images=images,
        processing_s=since(watcher.created_at, watcher.processing_done_at),
        job_s=since(watcher.created_at, watcher.ended_at),
        tasks=watcher.tasks_total,
    )
    return run, seconds


async def staged_job(
    stack: LocalStack,
    workflow_id: str,
    images_dir: Path,
    batch_id: str,
    job_id: str,
    images: int,
    export_dir: Path,
    timeout_s: float,
    poll_s: float = 0.1,
) -> JobRun:
    """Stage `images_dir` as `batch_id`, run the job, download its export; checks one record per
    image. Each of the three commands fails after `timeout_s`."""
    stage_s = await stage_batch(stack, images_dir, batch_id, timeout_s)
    run, process_s = await run_job(stack, workflow_id, batch_id, job_id, images, timeout_s, poll_s)
    start = time.perf_counter()
    await stack.cli(
        *("data-staging", "export-batch", "--batch-id", f"{job_id}-export", "--target-dir", str(export_dir)),
        timeout_s=timeout_s,
    )
    export_s = time.perf_counter() - start
    records, failed = count_records(export_dir)
    if records != images:
        raise RuntimeError(f"the export holds {records} records for {images} images")
    return JobRun(
        images=images,
        processing_s=run.processing_s,
        job_s=run.job_s,
        tasks=run.tasks,
        stage_s=stage_s,
        process_s=process_s,
        export_s=export_s,
        records=records,
        failed=failed,
    )
