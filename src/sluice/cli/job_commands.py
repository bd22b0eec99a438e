"""`sluice batch-processing ...`: the verbs of the hosted service's batch processing CLI."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tqdm import tqdm

from sluice.cli.context import Connection, connection
from sluice.cli.output import fields, table, when
from sluice.errors import InvalidArgument
from sluice.ids import validate_id
from sluice.v1 import common_pb2, scheduler_pb2

JOB_STATES = {
    scheduler_pb2.JOB_STATE_QUEUED: "queued",
    scheduler_pb2.JOB_STATE_RUNNING: "running",
    scheduler_pb2.JOB_STATE_COMPLETED: "completed",
    scheduler_pb2.JOB_STATE_FAILED: "failed",
    scheduler_pb2.JOB_STATE_ABORTED: "aborted",
}
STAGE_STATES = {
    scheduler_pb2.STAGE_STATE_PENDING: "pending",
    scheduler_pb2.STAGE_STATE_RUNNING: "running",
    scheduler_pb2.STAGE_STATE_COMPLETED: "completed",
    scheduler_pb2.STAGE_STATE_FAILED: "failed",
}
MACHINE_TYPES = {"cpu": common_pb2.MACHINE_TYPE_CPU, "gpu": common_pb2.MACHINE_TYPE_GPU}
FORMATS = {"jsonl": common_pb2.AGGREGATION_FORMAT_JSONL, "csv": common_pb2.AGGREGATION_FORMAT_CSV}
ENDED = {scheduler_pb2.JOB_STATE_COMPLETED, scheduler_pb2.JOB_STATE_FAILED, scheduler_pb2.JOB_STATE_ABORTED}


def _progress(job: scheduler_pb2.Job) -> str:
    stage = next((s for s in job.stages if s.name == job.current_stage), None)
    if stage is None:
        return "-"
    return f"{stage.name} {stage.items_done}/{stage.items_total}"


def process_images_with_workflow(args: argparse.Namespace) -> int:
    conn = connection(args)
    request = scheduler_pb2.CreateJobRequest(
        job_id=validate_id(args.job_id, "job id") if args.job_id else "",
        workflow_id=validate_id(args.workflow_id, "workflow id"),
        batch_id=validate_id(args.batch_id, "batch id"),
        machine_type=MACHINE_TYPES[args.machine_type],
        workers_per_machine=args.workers_per_machine,
        save_image_outputs=args.save_image_outputs,
        aggregation_format=FORMATS[args.aggregation_format],
    )
    if args.max_image_failure_rate is not None:
        request.max_image_failure_rate = args.max_image_failure_rate
    if args.workflow_params:
        request.workflow_params_json = _read_params(args.workflow_params)
    if args.image_input_name:
        request.image_input_name = args.image_input_name
    for value in args.image_outputs_to_save or []:
        request.image_outputs_to_save.extend(name for name in value.split(",") if name)
    job = conn.scheduler().CreateJob(request, metadata=conn.metadata)
    print(f"job {job.job_id} {JOB_STATES[job.state]}")
    if job.notice:
        print(f"note: {job.notice}")
    return _wait(conn, job.job_id, noticed=job.notice) if args.wait else 0


def _read_params(path: Path) -> str:
    """The workflow parameters file: a JSON object of parameter values."""
    if not path.is_file():
        raise InvalidArgument(f"workflow parameters file {path} does not exist")
    try:
        params = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InvalidArgument(f"workflow parameters file {path} is not valid JSON: {error}") from None
    if not isinstance(params, dict):
        raise InvalidArgument(f"workflow parameters file {path} must hold a JSON object")
    return json.dumps(params)


def _wait(conn: Connection, job_id: str, noticed: str = "") -> int:
    """Follow a job until it ends, with a progress bar per stage; non-zero unless it completed."""
    stub = conn.scheduler()
    bar: tqdm | None = None
    bar_stage = ""
    while True:
        job = stub.GetJob(scheduler_pb2.GetJobRequest(job_id=job_id), metadata=conn.metadata)
        stage = next((s for s in job.stages if s.name == job.current_stage), None)
        if stage is not None:
            if bar is None or bar_stage != stage.name:
                if bar is not None:
                    bar.close()
                bar = tqdm(total=stage.items_total, desc=stage.name, unit="img", disable=None)
                bar_stage = stage.name
                if bar.disable:  # not a terminal: one line per stage instead of a bar
                    print(f"{stage.name}: {stage.items_total} items", flush=True)
            bar.update(stage.items_done - bar.n)
        if job.notice and job.notice != noticed:
            tqdm.write(f"note: {job.notice}")
            noticed = job.notice
        if job.state in ENDED:
            break
        time.sleep(0.5)
    if bar is not None:
        bar.close()
    print(f"job {job.job_id} {JOB_STATES[job.state]}" + (f": {job.error}" if job.error else ""))
    return 0 if job.state == scheduler_pb2.JOB_STATE_COMPLETED else 1


def list_jobs(args: argparse.Namespace) -> int:
    conn = connection(args)
    found = conn.scheduler().ListJobs(
        scheduler_pb2.ListJobsRequest(page_size=args.limit), metadata=conn.metadata
    )
    if not found.jobs:
        print("no jobs")
        return 0
    rows = [
        (j.job_id, JOB_STATES[j.state], _progress(j), j.workflow_id, j.batch_id, when(j.created_at))
        for j in found.jobs
    ]
    print(table(["JOB", "STATE", "PROGRESS", "WORKFLOW", "BATCH", "CREATED"], rows))
    return 0


def show_job_details(args: argparse.Namespace) -> int:
    conn = connection(args)
    job = conn.scheduler().GetJob(
        scheduler_pb2.GetJobRequest(job_id=validate_id(args.job_id, "job id")), metadata=conn.metadata
    )
    pairs: list[tuple[str, object]] = [
        ("job id", job.job_id),
        ("state", JOB_STATES[job.state]),
        ("stage", job.current_stage),
        ("workflow", f"{job.workflow_id} (version {job.workflow_version})"),
        ("batch", job.batch_id),
        ("machine type", {1: "cpu", 2: "gpu"}.get(job.machine_type, "?")),
        ("created", when(job.created_at)),
        ("updated", when(job.updated_at)),
    ]
    if job.notice:
        pairs.append(("notice", job.notice))
    if job.error:
        pairs.append(("error", job.error))
    print(fields(pairs))
    print()
    print(
        table(
            ["STAGE", "STATE", "TASKS", "ITEMS", "FAILED", "OUTPUT BATCH"],
            [
                (
                    s.name,
                    STAGE_STATES[s.state],
                    f"{s.tasks_done}/{s.tasks_total}",
                    f"{s.items_done}/{s.items_total}",
                    s.items_failed,
                    s.output_batch_id,
                )
                for s in job.stages
            ],
        )
    )
    return 0


def watch_job(args: argparse.Namespace) -> int:
    return _wait(connection(args), validate_id(args.job_id, "job id"))


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("batch-processing", help="run workflows over batches").add_subparsers(
        dest="verb", required=True, metavar="VERB"
    )
    p = group.add_parser(
        "process-images-with-workflow",
        parents=parents,
        help="start a job that runs a workflow over a batch of images",
    )
    p.add_argument("--workflow-id", "-w", required=True)
    p.add_argument("--batch-id", "-b", required=True)
    p.add_argument("--machine-type", "-mt", choices=sorted(MACHINE_TYPES), default="cpu")
    p.add_argument("--workers-per-machine", type=int, default=1, help="task slots per machine")
    p.add_argument("--save-image-outputs", action="store_true", help="keep the workflow's images")
    p.add_argument("--aggregation-format", choices=sorted(FORMATS), default="jsonl")
    p.add_argument(
        "--max-image-failure-rate",
        type=float,
        default=None,
        help="fail the job when a larger fraction of images fail (0-1; default: no limit)",
    )
    p.add_argument("--workflow-params", type=Path, help="JSON file with values for the workflow's parameters")
    p.add_argument(
        "--image-input-name", help="the workflow's image input name (checked against the workflow)"
    )
    p.add_argument(
        "--image-outputs-to-save",
        action="append",
        metavar="NAME[,NAME]",
        help="keep only these image outputs (repeatable; implies --save-image-outputs)",
    )
    p.add_argument("--job-id", "-j", help="choose the job id (default: generated)")
    p.add_argument("--wait", action="store_true", help="follow the job's progress until it ends")
    p.set_defaults(func=process_images_with_workflow)

    p = group.add_parser("list-jobs", parents=parents, help="list jobs, newest first")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=list_jobs)

    p = group.add_parser("show-job-details", parents=parents, help="show a job and its stages")
    p.add_argument("--job-id", "-j", required=True)
    p.set_defaults(func=show_job_details)

    p = group.add_parser("watch-job", parents=parents, help="follow a job's progress until it ends")
    p.add_argument("--job-id", "-j", required=True)
    p.set_defaults(func=watch_job)
