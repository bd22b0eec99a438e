"""`sluice batch-processing ...`: the verbs of the hosted service's batch processing CLI."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from sluice.cli import log_commands
from sluice.cli.commands import command_help
from sluice.cli.context import Connection, connection
from sluice.cli.output import (
    add_output_option,
    fields,
    message_document,
    print_json,
    print_messages,
    table,
    wants_json,
    when,
)
from sluice.cli.usage_commands import print_estimate, usage_text
from sluice.errors import InvalidArgument
from sluice.ids import validate_id
from sluice.job_states import JOB_STATE_CHOICES, JOB_STATES, STAGE_STATES, TASK_STATES, task_counts
from sluice.v1 import common_pb2, scheduler_pb2
from sluice.webhook_urls import display_url, validate_url

MACHINE_TYPES = {"cpu": common_pb2.MACHINE_TYPE_CPU, "gpu": common_pb2.MACHINE_TYPE_GPU}
FORMATS = {"jsonl": common_pb2.AGGREGATION_FORMAT_JSONL, "csv": common_pb2.AGGREGATION_FORMAT_CSV}


def _progress(job: scheduler_pb2.Job) -> str:
    stage = next((s for s in job.stages if s.name == job.current_stage), None)
    if stage is None:
        return "-"
    return f"{stage.name} {stage.items_done}/{stage.items_total}"


def process_images_with_workflow(args: argparse.Namespace) -> int:
    return _start_job(args, _job_request(args))


def process_videos_with_workflow(args: argparse.Namespace) -> int:
    request = _job_request(args)
    if args.max_video_fps is not None:
        request.max_video_fps = args.max_video_fps
    if args.video_segment_seconds is not None:
        request.video_segment_seconds = args.video_segment_seconds
    return _start_job(args, request, "frames")


def _job_request(args: argparse.Namespace) -> scheduler_pb2.CreateJobRequest:
    """The request both job verbs make from the options they share."""
    request = scheduler_pb2.CreateJobRequest(
        job_id=validate_id(args.job_id, "job id") if args.job_id else "",
        workflow_id=validate_id(args.workflow_id, "workflow id"),
        batch_id=validate_id(args.batch_id, "batch id"),
        machine_type=MACHINE_TYPES[args.machine_type],
        workers_per_machine=args.workers_per_machine or 0,
        save_image_outputs=args.save_image_outputs,
        aggregation_format=FORMATS[args.aggregation_format],
        max_parallel_tasks=args.max_parallel_tasks or 0,
        priority=args.priority,
    )
    if args.max_image_failure_rate is not None:
        request.max_image_failure_rate = args.max_image_failure_rate
    if args.max_runtime_seconds is not None:
        request.max_runtime_seconds = args.max_runtime_seconds
    if args.workflow_params:
        request.workflow_params_json = _read_params(args.workflow_params)
    if args.image_input_name:
        request.image_input_name = args.image_input_name
    for value in args.image_outputs_to_save or []:
        request.image_outputs_to_save.extend(name for name in value.split(",") if name)
    if args.notifications_url:
        request.notifications_url = validate_url(args.notifications_url)
    return request


def _start_job(
    args: argparse.Namespace, request: scheduler_pb2.CreateJobRequest, items: str = "images"
) -> int:
    """Start the job (or, with --estimate, only say what it would cost); `items`: what the
    batch's items are called."""
    conn = connection(args)
    if args.estimate:
        machine = args.machine_type
        print(f"running the workflow on a sample of batch {request.batch_id} on a {machine} worker...")
        estimate = conn.scheduler().EstimateJob(request, metadata=conn.metadata)
        print_estimate(estimate, items)
        return 0
    job = conn.scheduler().CreateJob(request, metadata=conn.metadata)
    print(f"job {job.job_id} {JOB_STATES[job.state]}")
    if job.notice:
        print(f"note: {job.notice}")
    return _wait(conn, job.job_id, noticed=job.notice) if args.wait else 0


def _wait(conn: Connection, job_id: str, noticed: str = "") -> int:
    from sluice.cli.job_follow import wait  # progress bars: only for the verbs that follow a job

    return wait(conn, job_id, noticed=noticed)


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


def list_jobs(args: argparse.Namespace) -> int:
    conn = connection(args)
    request = scheduler_pb2.ListJobsRequest(
        page_size=args.page_size,
        page_token=args.page_token or "",
        states=[JOB_STATE_CHOICES[state] for state in args.state or []],
    )
    found = conn.scheduler().ListJobs(request, metadata=conn.metadata)
    if wants_json(args):
        print_messages(found.jobs)
        if found.next_page_token:
            print(f"next page: --page-token {found.next_page_token}", file=sys.stderr)
        return 0
    if not found.jobs:
        print("no jobs")
        return 0
    rows = [
        (j.job_id, JOB_STATES[j.state], _progress(j), j.workflow_id, j.batch_id, when(j.created_at))
        for j in found.jobs
    ]
    print(table(["JOB", "STATE", "PROGRESS", "WORKFLOW", "BATCH", "CREATED"], rows))
    if found.next_page_token:
        print(f"next page: --page-token {found.next_page_token}")
    return 0


def _machine_time(job: scheduler_pb2.Job) -> str:
    used = f"{job.machine_seconds:.1f} s"
    return f"{used} of {job.max_runtime_seconds:g} s cap" if job.max_runtime_seconds else used


def _input_text(job: scheduler_pb2.Job) -> str:
    if job.input_type != common_pb2.BATCH_TYPE_VIDEOS:
        return "images"
    rate = f"at most {job.max_video_fps:g} frames/s" if job.max_video_fps else "every frame"
    return f"videos, {rate}, segments of {job.video_segment_seconds:g} s"


def show_job_details(args: argparse.Namespace) -> int:
    conn = connection(args)
    job = conn.scheduler().GetJob(
        scheduler_pb2.GetJobRequest(job_id=validate_id(args.job_id, "job id")), metadata=conn.metadata
    )
    if wants_json(args):
        print_json(message_document(job))
        return 0
    pairs: list[tuple[str, object]] = [
        ("job id", job.job_id),
        ("state", JOB_STATES[job.state]),
        ("stage", job.current_stage),
        ("attempt", job.attempt),
        ("workflow", f"{job.workflow_id} (version {job.workflow_version})"),
        ("batch", job.batch_id),
        ("input", _input_text(job)),
        ("machine type", {1: "cpu", 2: "gpu"}.get(job.machine_type, "?")),
        ("machine time", _machine_time(job)),
        ("usage", usage_text(job.usage)),
        ("parallel tasks", job.max_parallel_tasks or "as many as the workers have slots"),
        ("workers per machine", job.workers_per_machine or "every slot"),
        ("priority", job.priority),
        ("created", when(job.created_at)),
        ("started", when(job.started_at)),
        ("ended", when(job.ended_at)),
    ]
    if job.notifications_url:
        pairs.append(("notifications", display_url(job.notifications_url)))
    if job.notice:
        pairs.append(("notice", job.notice))
    if job.error:
        pairs.append(("reason" if job.state != scheduler_pb2.JOB_STATE_FAILED else "error", job.error))
    print(fields(pairs))
    print()
    print(
        table(
            ["STAGE", "STATE", "TASKS", "ITEMS", "FAILED", "TASK STATES", "OUTPUT BATCH"],
            [
                (
                    s.name,
                    STAGE_STATES[s.state],
                    f"{s.tasks_done}/{s.tasks_total}",
                    f"{s.items_done}/{s.items_total}",
                    s.items_failed,
                    task_counts(s.task_counts),
                    s.output_batch_id,
                )
                for s in job.stages
            ],
        )
    )
    if job.tasks:
        print()
        rows = [
            (
                t.task_id,
                TASK_STATES[t.state],
                f"{t.items_done}/{t.items_total}",
                t.items_failed,
                t.deliveries,
                f"{t.machine_seconds:.1f}",
                t.worker_id or "-",
                t.error or "",
            )
            for t in job.tasks
        ]
        print(table(["TASK", "STATE", "ITEMS", "FAILED", "DELIVERIES", "MACHINE S", "WORKER", "ERROR"], rows))
    return 0


def watch_job(args: argparse.Namespace) -> int:
    return _wait(connection(args), validate_id(args.job_id, "job id"))


def abort_job(args: argparse.Namespace) -> int:
    conn = connection(args)
    job = conn.scheduler().AbortJob(
        scheduler_pb2.AbortJobRequest(job_id=validate_id(args.job_id, "job id")), metadata=conn.metadata
    )
    print(f"job {job.job_id} {JOB_STATES[job.state]}")
    return 0


def restart_job(args: argparse.Namespace) -> int:
    conn = connection(args)
    request = scheduler_pb2.RestartJobRequest(
        job_id=validate_id(args.job_id, "job id"),
        workers_per_machine=args.workers_per_machine or 0,
        max_parallel_tasks=args.max_parallel_tasks or 0,
    )
    if args.machine_type:
        request.machine_type = MACHINE_TYPES[args.machine_type]
    if args.max_runtime_seconds is not None:
        request.max_runtime_seconds = args.max_runtime_seconds
    if args.max_image_failure_rate is not None:
        request.max_image_failure_rate = args.max_image_failure_rate
    job = conn.scheduler().RestartJob(request, metadata=conn.metadata)
    print(f"job {job.job_id} {JOB_STATES[job.state]} (attempt {job.attempt})")
    return _wait(conn, job.job_id) if args.wait else 0


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type that refuses values below 0 with one clear line."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
        return value

    return parse


def _job_limit_options(p: argparse.ArgumentParser, *, restart: bool) -> None:
    keep = " (default: the job's)" if restart else ""
    p.add_argument(
        "--workers-per-machine",
        type=_positive(int),
        default=None,
        help="task slots the job may use per worker machine" + (keep or " (default: every slot)"),
    )
    p.add_argument(
        "--max-parallel-tasks",
        type=_positive(int),
        default=None,
        help="most of the job's tasks in flight at once" + (keep or " (default: no limit)"),
    )
    p.add_argument(
        "--max-runtime-seconds",
        type=float,
        default=None,
        help="machine time the job may use, summed over its task slots" + (keep or " (default: no cap)"),
    )
    p.add_argument(
        "--max-image-failure-rate",
        type=float,
        default=None,
        help="fail the job when a larger fraction of images fail (0-1)" + (keep or "; default: no limit"),
    )


def _job_options(p: argparse.ArgumentParser) -> None:
    """The options of both job verbs."""
    p.add_argument("--workflow-id", "-w", required=True)
    p.add_argument("--batch-id", "-b", required=True)
    p.add_argument("--machine-type", "-mt", choices=sorted(MACHINE_TYPES), default="cpu")
    p.add_argument("--save-image-outputs", action="store_true", help="keep the workflow's images")
    p.add_argument("--aggregation-format", choices=sorted(FORMATS), default="jsonl")
    _job_limit_options(p, restart=False)
    p.add_argument(
        "--priority", type=int, default=0, help="jobs of higher priority get free slots first (default 0)"
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
    p.add_argument(
        "--notifications-url",
        metavar="URL",
        help="POST each of the job's events here as signed JSON (docs/webhooks.md)",
    )
    p.add_argument(
        "--estimate",
        action="store_true",
        help="run the workflow on a small sample of the batch and print what the job would cost; "
        "starts no job",
    )


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("batch-processing", help=command_help("batch-processing")).add_subparsers(
        dest="verb", required=True, metavar="VERB"
    )
    p = group.add_parser(
        "process-images-with-workflow",
        parents=parents,
        help="start a job that runs a workflow over a batch of images",
    )
    _job_options(p)
    p.set_defaults(func=process_images_with_workflow)

    p = group.add_parser(
        "process-videos-with-workflow",
        parents=parents,
        help="start a job that runs a workflow over every frame (or --max-video-fps) of a batch of videos",
    )
    _job_options(p)
    p.add_argument(
        "--max-video-fps",
        type=float,
        default=None,
        help="process at most this many frames per second of video (default: every frame)",
    )
    p.add_argument(
        "--video-segment-seconds",
        type=float,
        default=None,
        help="cut longer videos into segments of this many seconds, processed in parallel (default 300)",
    )
    p.set_defaults(func=process_videos_with_workflow)

    p = group.add_parser("list-jobs", parents=parents, help="list jobs, newest first, a page at a time")
    p.add_argument(
        "--page-size", "--limit", type=_positive(int), default=100, help="jobs per page (at most 1000)"
    )
    p.add_argument("--page-token", help="the token printed after the previous page")
    p.add_argument(
        "--state",
        action="append",
        choices=sorted(JOB_STATE_CHOICES),
        help="only jobs in this state (repeatable)",
    )
    add_output_option(p)
    p.set_defaults(func=list_jobs)

    p = group.add_parser("show-job-details", parents=parents, help="show a job and its stages")
    p.add_argument("--job-id", "-j", required=True)
    add_output_option(p)
    p.set_defaults(func=show_job_details)

    p = group.add_parser("watch-job", parents=parents, help="follow a job's progress until it ends")
    p.add_argument("--job-id", "-j", required=True)
    p.set_defaults(func=watch_job)

    p = group.add_parser("abort-job", parents=parents, help="stop a job's queued and running tasks")
    p.add_argument("--job-id", "-j", required=True)
    p.set_defaults(func=abort_job)

    p = group.add_parser(
        "restart-job", parents=parents, help="rerun what an aborted, stopped or failed job did not finish"
    )
    p.add_argument("--job-id", "-j", required=True)
    p.add_argument("--machine-type", "-mt", choices=sorted(MACHINE_TYPES), default=None)
    _job_limit_options(p, restart=True)
    p.add_argument("--wait", action="store_true", help="follow the job's progress until it ends")
    p.set_defaults(func=restart_job)

    log_commands.register(group, parents)
