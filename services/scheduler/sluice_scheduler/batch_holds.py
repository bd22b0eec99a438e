"""Holding the batches jobs use, so that staging's expiry sweep never deletes one under a job.

CreateJob holds the job's input batch first (`hold_input`), which also refuses a job on an
expired batch with staging's FailedPrecondition (saying when it expired) before anything is
written. When the job's processing batch is registered while the job runs (its first results,
early_registration.py), `hold_output` holds it with the input batch, for as long. RestartJob
holds the input and the job's output batches that exist (`hold_job`), so a restart whose input
or earlier results have expired is refused the same way. While a job is queued or running,
`renew_loop` holds them all again every `hold_renew_s` (5 min) for HOLD_S (15 min), so one
missed renewal loses nothing. A job that ends is no longer renewed: its batches' holds lapse
together within HOLD_S and they expire as they would have (at once, when already past their
expiry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sluice.errors import NotFound, SluiceError
from sluice.messaging import QuietFailures
from sluice.v1 import staging_pb2
from sluice_scheduler.repository import Repository
from sluice_scheduler.staging_client import StagingClient

log = logging.getLogger(__name__)

HOLD_S = 15 * 60.0
RENEW_EVERY_S = 5 * 60.0


def output_batch_ids(job_id: str) -> tuple[str, str]:
    """The batches a job writes: `<job>-processing`, then `<job>-export`."""
    return f"{job_id}-processing", f"{job_id}-export"


async def hold_input(staging: StagingClient, workspace: str, batch_id: str, job_id: str) -> staging_pb2.Batch:
    """Hold the job's input batch for HOLD_S; FailedPrecondition when it has expired."""
    return await staging.hold(workspace, batch_id, job_id, HOLD_S)


async def hold_output(
    staging: StagingClient, workspace: str, job_id: str, input_batch_id: str, output_batch_id: str
) -> None:
    """Hold an output batch the running job just registered, and its input batch again: both
    holds end together, and are renewed (or lapse) together."""
    await hold_input(staging, workspace, input_batch_id, job_id)
    await staging.hold(workspace, output_batch_id, job_id, HOLD_S)


async def hold_job(staging: StagingClient, workspace: str, job_id: str, batch_id: str) -> None:
    """Hold a job's input batch and those of its output batches already registered."""
    await hold_input(staging, workspace, batch_id, job_id)
    for output in output_batch_ids(job_id):
        with contextlib.suppress(NotFound):  # not written yet
            await staging.hold(workspace, output, job_id, HOLD_S)


async def renew(repo: Repository, staging: StagingClient) -> int:
    """Hold the batches of every queued or running job again; how many jobs were renewed."""
    renewed = 0
    jobs = sorted(await repo.active_jobs(), key=lambda job: (job["workspace"], job["job_id"]))
    for job in jobs:
        if job["kind"] != "job":  # an estimate's input was held when it began; it writes no batch
            continue
        try:
            await hold_job(staging, job["workspace"], job["job_id"], job["batch_id"])
        except SluiceError as error:  # one job's trouble (expired, staging away) stops no other's
            log.warning("job %s of %s: cannot hold its batches: %s", job["job_id"], job["workspace"], error)
            continue
        renewed += 1
    return renewed


async def renew_loop(repo: Repository, staging: StagingClient, every_s: float, stop: asyncio.Event) -> None:
    """`renew` now and every `every_s` seconds until `stop`; staging or Postgres away: next time."""
    failures = QuietFailures(log, "renewing the holds of active jobs' batches")
    while not stop.is_set():
        try:
            await renew(repo, staging)
            failures.succeeded()
        except Exception as error:
            failures.failed(error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
