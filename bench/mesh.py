"""The mesh way: a fresh local stack, driven by the `sluice` CLI as a user drives it.

`run_mesh` starts `sluice up` in a new state folder, registers the example workflow, then times
stage -> process (`--wait`) -> export as three CLI subprocesses. Beside them it watches the job:
GetJob over gRPC every 0.1 s (with the stack's API key) for the processing stage's progress, and
a NATS subscription on `sluice.results.>` for the first TaskResult. "Submission" is the job's
`created_at` as the scheduler recorded it (same machine, same clock).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
from nats.aio.client import Client
from nats.aio.msg import Msg

from bench.model import WORKFLOW_FILE
from sluice.clients import aio_channel, scheduler_stub, user_metadata
from sluice.job_states import ENDED
from sluice.messaging import connect
from sluice.stack.state import Layout, StackFile, load_credentials
from sluice.stack.supervisor import NATS_USER
from sluice.v1 import scheduler_pb2, tasks_pb2

JOB_ID = "bench"
BATCH_ID = "bench-images"
WORKFLOW_ID = "bench-text-detection"
PROCESSING = "processing"
POLL_S = 0.1


@dataclass(frozen=True)
class MeshRun:
    images: int
    up_s: float
    """`sluice up` on an empty state folder (not part of any figure below)."""
    total_s: float
    """Start of `create-batch-of-images` to the end of `export-batch` (stage + process + export)."""
    stage_s: float
    process_s: float
    """`process-images-with-workflow --wait`, CLI start to exit (includes the export stage)."""
    export_s: float
    """`export-batch`: download and unpack of the export archives."""
    processing_s: float | None
    """Job submission to the processing stage's items_done == items_total (GetJob polls)."""
    first_result_s: float | None
    """Job submission to the first processing TaskResult seen on NATS."""
    first_task_polled_s: float | None
    """Job submission to the first GetJob showing tasks_done >= 1 on the processing stage."""
    records: int
    failed: int
    tasks: int


class CliError(RuntimeError):
    pass


def cli_command(state: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "sluice.cli.main", *args, "--state-dir", str(state)]


async def cli(state: Path, *args: str, timeout_s: float = 120.0) -> str:
    """Run one `sluice` command; its stdout, or CliError with everything it printed.

    A command still running after `timeout_s` is killed (CliError).
    """
    process = await asyncio.create_subprocess_exec(
        *cli_command(state, *args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        raise CliError(f"sluice {' '.join(args)} did not finish within {timeout_s:.0f} s") from None
    finally:
        if process.returncode is None:
            process.kill()  # timed out or interrupted: leave no CLI behind
            await process.wait()
    if process.returncode != 0:
        raise CliError(
            f"sluice {' '.join(args)} failed ({process.returncode}):\n{out.decode()}\n{err.decode()}"
        )
    return out.decode()


def sluice_down(state: Path) -> None:
    """`sluice down` (never raises: it runs on the way out)."""
    try:
        subprocess.run(cli_command(state, "down"), capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        print(f"warning: sluice down failed: {error}", file=sys.stderr)


def log_tails(state: Path, chars: int = 2000) -> str:
    """The end of every service log in the state folder (for a failure report)."""
    parts = []
    for log in sorted(Layout(state).logs_dir.glob("*.log")):
        parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}")
    return "\n".join(parts)


class JobWatcher:
    """Polls GetJob until the job ends, noting when milestones were first seen (time.time());
    `job` is the last Job seen."""

    def __init__(self, address: str, api_key: str, job_id: str = JOB_ID) -> None:
        self._address = address
        self._metadata = user_metadata(api_key)
        self.job_id = job_id
        self.job: scheduler_pb2.Job | None = None
        self.created_at: float | None = None
        self.first_task_at: float | None = None
        self.processing_done_at: float | None = None
        self.tasks_total = 0
        self.state: int = scheduler_pb2.JOB_STATE_UNSPECIFIED
        self.last_seen = "not seen yet"

    def _observe(self, job: scheduler_pb2.Job, now: float) -> None:
        self.job = job
        if self.created_at is None and job.HasField("created_at"):
            self.created_at = job.created_at.ToMicroseconds() / 1e6
        self.state = job.state
        progress = ", ".join(
            f"{s.name} tasks {s.tasks_done}/{s.tasks_total} items {s.items_done}/{s.items_total}"
            for s in job.stages
        )
        self.last_seen = (
            f"state {scheduler_pb2.JobState.Name(job.state)}, stage {job.current_stage}: {progress}"
        )
        stage = next((s for s in job.stages if s.name == PROCESSING), None)
        if stage is None:
            return
        self.tasks_total = int(stage.tasks_total)
        if self.first_task_at is None and stage.tasks_done >= 1:
            self.first_task_at = now
        finished = stage.items_total > 0 and stage.items_done >= stage.items_total
        if self.processing_done_at is None and (
            finished or stage.state == scheduler_pb2.STAGE_STATE_COMPLETED
        ):
            self.processing_done_at = now

    async def run(self) -> None:
        async with aio_channel(self._address) as channel:
            stub = scheduler_stub(channel)
            while self.state not in ENDED:
                try:
                    job = await stub.GetJob(
                        scheduler_pb2.GetJobRequest(job_id=self.job_id), metadata=self._metadata
                    )
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                else:
                    self._observe(job, time.time())
                await asyncio.sleep(POLL_S)


class FirstResult:
    """Subscribes to sluice.results.> and notes when the first processing TaskResult arrives."""

    def __init__(self) -> None:
        self.at: float | None = None
        self._client: Client | None = None

    async def start(self, nats_url: str, password: str) -> None:
        """Connect as the services' NATS user (`password`: the stack's internal token)."""
        client = await connect(nats_url, "sluice-bench", NATS_USER, password)
        self._client = client

        async def on_result(message: Msg) -> None:
            result = tasks_pb2.TaskResult()
            result.ParseFromString(message.data)
            if self.at is None and result.stage == PROCESSING:
                self.at = time.time()

        await client.subscribe("sluice.results.>", cb=on_result)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()


def _count_records(export_dir: Path) -> tuple[int, int]:
    """(records, failed records) in the unpacked export's results.jsonl."""
    results = export_dir / "results.jsonl"
    if not results.is_file():
        raise RuntimeError(f"the export has no results.jsonl: {sorted(p.name for p in export_dir.iterdir())}")
    records = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    return len(records), sum(r.get("status") != "ok" for r in records)


def _since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


async def _timed_job(
    state: Path, images_dir: Path, export_dir: Path, workers: int, images: int, timeout_s: float
) -> MeshRun:
    credentials = load_credentials(state)
    nats_port = StackFile.load(Layout(state)).parts["nats"].port
    await cli(state, "workflows", "create", "--workflow-id", WORKFLOW_ID, "--file", str(WORKFLOW_FILE))
    listener = FirstResult()
    await listener.start(f"nats://127.0.0.1:{nats_port}", Layout(state).token_file.read_text().strip())
    watcher = JobWatcher(credentials["scheduler_address"], credentials["api_key"])
    watching = asyncio.create_task(watcher.run())
    try:
        start = time.perf_counter()
        await cli(
            state,
            "data-staging",
            "create-batch-of-images",
            "--images-dir",
            str(images_dir),
            "--batch-id",
            BATCH_ID,
            timeout_s=timeout_s,
        )
        staged = time.perf_counter()
        try:
            out = await cli(
                state,
                *("batch-processing", "process-images-with-workflow", "--workflow-id", WORKFLOW_ID),
                *(
                    "--batch-id",
                    BATCH_ID,
                    "--job-id",
                    JOB_ID,
                    "--workers-per-machine",
                    str(workers),
                    "--wait",
                ),
                timeout_s=timeout_s,
            )
        except CliError as error:
            raise CliError(f"{error}; the job was last seen as {watcher.last_seen}") from None
        processed = time.perf_counter()
        if f"job {JOB_ID} completed" not in out:
            raise RuntimeError(f"the job did not complete:\n{out}")
        await cli(
            state,
            "data-staging",
            "export-batch",
            "--batch-id",
            f"{JOB_ID}-export",
            "--target-dir",
            str(export_dir),
            timeout_s=timeout_s,
        )
        end = time.perf_counter()
        await asyncio.wait_for(watching, timeout=10)
    finally:
        if not watching.done():
            watching.cancel()
        await listener.stop()
    records, failed = _count_records(export_dir)
    if records != images:
        raise RuntimeError(f"the export holds {records} records for {images} images")
    return MeshRun(
        images=images,
        up_s=0.0,
        total_s=end - start,
        stage_s=staged - start,
        process_s=processed - staged,
        export_s=end - processed,
        processing_s=_since(watcher.created_at, watcher.processing_done_at),
        first_result_s=_since(watcher.created_at, listener.at),
        first_task_polled_s=_since(watcher.created_at, watcher.first_task_at),
        records=records,
        failed=failed,
        tasks=watcher.tasks_total,
    )


def run_mesh(
    work_dir: Path, images_dir: Path, images: int, workers: int, timeout_s: float = 300.0
) -> MeshRun:
    """Up a fresh stack under `work_dir`, time the job, and always take the stack down again.

    Each step (staging, the job, the export download) fails after `timeout_s`.

    `work_dir` must be reachable by other users (0755): Postgres runs unprivileged.
    """
    state = work_dir / "state"
    export_dir = work_dir / "export"
    try:
        started = time.perf_counter()
        up = subprocess.run(
            cli_command(state, "up", "--workers-per-machine", str(workers)),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        up_s = time.perf_counter() - started
        if up.returncode != 0:
            raise CliError(f"sluice up failed ({up.returncode}):\n{up.stdout}\n{up.stderr}")
        run = asyncio.run(_timed_job(state, images_dir, export_dir, workers, images, timeout_s))
        return replace(run, up_s=up_s)
    except Exception:
        if state.exists():
            print(log_tails(state), file=sys.stderr)
        raise
    finally:
        if state.exists():
            sluice_down(state)
        shutil.rmtree(export_dir, ignore_errors=True)
