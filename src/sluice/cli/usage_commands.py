"""`sluice usage`: machine time and credits of the caller's workspace over a period; and how
usage and estimates are printed by the job verbs."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from sluice.cli.commands import command_help
from sluice.cli.context import connection
from sluice.cli.output import add_output_option, fields, message_document, print_json, table, wants_json
from sluice.errors import InvalidArgument
from sluice.v1 import common_pb2, scheduler_pb2

GROUPINGS = {"job": scheduler_pb2.USAGE_GROUPING_JOB, "day": scheduler_pb2.USAGE_GROUPING_DAY}
MACHINE_NAMES = {common_pb2.MACHINE_TYPE_CPU: "cpu", common_pb2.MACHINE_TYPE_GPU: "gpu"}


def day(text: str) -> date:
    """An argparse type: a UTC day written YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _timestamp(value: date) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime(value.year, value.month, value.day, tzinfo=UTC))
    return ts


def duration_text(seconds: float) -> str:
    """Seconds for people: '42.0 s', '12.5 min', '3.20 h'."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def usage_text(usage: scheduler_pb2.Usage) -> str:
    """A job's usage on one line: machine time by type and credits."""
    return (
        f"cpu {duration_text(usage.cpu_seconds)}, gpu {duration_text(usage.gpu_seconds)}, "
        f"{usage.credits:.4f} credits"
    )


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.4f}"


def usage(args: argparse.Namespace) -> int:
    request = scheduler_pb2.GetUsageRequest(by=GROUPINGS[args.by])
    if args.since is not None:
        request.since.CopyFrom(_timestamp(args.since))
    if args.until is not None:
        request.until.CopyFrom(_timestamp(args.until + timedelta(days=1)))  # through that day
    if args.since is not None and args.until is not None and args.since > args.until:
        raise InvalidArgument(f"--since {args.since} is after --until {args.until}")
    conn = connection(args)
    found = conn.scheduler().GetUsage(request, metadata=conn.metadata)
    if wants_json(args):
        print_json(message_document(found))
        return 0
    since = args.since.isoformat() if args.since else "the first job"
    until = args.until.isoformat() if args.until else "now"
    print(f"workspace: {found.workspace}")
    print(f"period: {since} to {until} (UTC, days included)")
    if not found.rows:
        print("no jobs in this period")
        return 0
    rows: list[tuple[object, ...]] = [
        (r.key, r.jobs, _hours(r.usage.cpu_seconds), _hours(r.usage.gpu_seconds), f"{r.usage.credits:.4f}")
        for r in found.rows
    ]
    total = found.total
    jobs = sum(r.jobs for r in found.rows)
    rows.append(("total", jobs, _hours(total.cpu_seconds), _hours(total.gpu_seconds), f"{total.credits:.4f}"))
    key = "JOB" if args.by == "job" else "DAY"
    print(table([key, "JOBS", "CPU H", "GPU H", "CREDITS"], rows))
    return 0


def print_estimate(estimate: scheduler_pb2.JobEstimate, items: str) -> None:
    """What EstimateJob answered, for people (`items`: images or frames)."""
    machine = MACHINE_NAMES.get(estimate.machine_type, "?")
    print(
        fields(
            [
                ("sample", f"{estimate.sample_items} of {estimate.items_total} {items}"),
                ("sample machine time", duration_text(estimate.sample_machine_seconds)),
                ("machine time", f"{duration_text(estimate.machine_seconds)} ({machine})"),
                ("wall time", f"{duration_text(estimate.wall_seconds)} on {estimate.slots} slots"),
                ("credits", f"{estimate.credits:.4f}"),
            ]
        )
    )
    print("no job was started")


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "usage",
        parents=parents,
        help=command_help("usage"),
    )
    p.add_argument("--since", type=day, help="jobs created on or after this UTC day (YYYY-MM-DD)")
    p.add_argument("--until", type=day, help="jobs created up to and including this UTC day (YYYY-MM-DD)")
    p.add_argument("--by", choices=sorted(GROUPINGS), default="job", help="one row per job or per day")
    add_output_option(p)
    p.set_defaults(func=usage)
