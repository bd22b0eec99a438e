"""Following a job until it ends (`--wait`, `watch-job`), riding out a service restart."""

from __future__ import annotations

import sys
import time

import grpc
from tqdm import tqdm

from sluice.cli.context import Connection
from sluice.job_states import ENDED, JOB_STATES, SUCCEEDED
from sluice.v1 import common_pb2, scheduler_pb2

POLL_S = 0.5
# How long the scheduler may stay unreachable before following gives up.
PATIENCE_S = 300.0
RETRIED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def get_job_patiently(conn: Connection, job_id: str) -> scheduler_pb2.Job:
    """GetJob, retried with backoff while the scheduler is restarting (said once, on stderr)."""
    deadline = time.monotonic() + PATIENCE_S
    delay = 0.5
    told = False
    while True:
        try:
            job = conn.scheduler().GetJob(
                scheduler_pb2.GetJobRequest(job_id=job_id), metadata=conn.metadata, timeout=10
            )
        except grpc.RpcError as error:
            if error.code() not in RETRIED or time.monotonic() + delay > deadline:
                raise
            if not told:
                print("note: the scheduler is not answering; retrying until it is back", file=sys.stderr)
                told = True
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        if told:
            print("note: the scheduler is back", file=sys.stderr)
        return job


def wait(conn: Connection, job_id: str, noticed: str = "") -> int:
    """Follow a job until it ends, with a progress bar per stage; 0 when it completed."""
    bar: tqdm | None = None
    bar_stage = ""
    while True:
        job = get_job_patiently(conn, job_id)
        stage = next((s for s in job.stages if s.name == job.current_stage), None)
        if stage is not None:
            if bar is None or bar_stage != stage.name:
                if bar is not None:
                    bar.close()
                frames = job.input_type == common_pb2.BATCH_TYPE_VIDEOS
                unit = "frame" if frames else "img"
                bar = tqdm(total=stage.items_total, desc=stage.name, unit=unit, disable=None)
                bar_stage = stage.name
                if bar.disable:  # not a terminal: one line per stage instead of a bar
                    noun = "frames" if frames else "items"
                    print(f"{stage.name}: {stage.items_total} {noun}", flush=True)
            bar.update(stage.items_done - bar.n)
        if job.notice and job.notice != noticed:
            tqdm.write(f"note: {job.notice}")
            noticed = job.notice
        if job.state in ENDED:
            break
        time.sleep(POLL_S)
    if bar is not None:
        bar.close()
    print(f"job {job.job_id} {JOB_STATES[job.state]}" + (f": {job.error}" if job.error else ""))
    return 0 if job.state in SUCCEEDED else 1
