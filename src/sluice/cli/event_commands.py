"""`sluice events --job-id J [--follow]`: a job's events, one line each, oldest first."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import TextIO

from sluice.cli.commands import command_help
from sluice.cli.context import connection
from sluice.cli.output import add_output_option, message_document, print_json, wants_json
from sluice.ids import validate_id
from sluice.v1 import events_pb2, scheduler_pb2

_PREFIX = "EVENT_TYPE_"


def kind(event: events_pb2.Event) -> str:
    """The event's kind as in its subject, e.g. job_completed."""
    try:
        name = events_pb2.EventType.Name(event.type)
    except ValueError:
        return f"type_{event.type}"
    return name.removeprefix(_PREFIX).lower()


def event_line(event: events_pb2.Event) -> str:
    """Time (UTC), kind, state, stage, items done/total and message."""
    time = event.time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    items = f"{event.items_done}/{event.items_total}" if event.items_total else "-"
    columns = [
        time,
        f"{kind(event):25}",
        f"{event.state or '-':21}",
        f"{event.stage or '-':10}",
        f"{items:>11}",
    ]
    line = "  ".join(columns)
    return f"{line}  {event.message}".rstrip()


def print_events(events: Iterable[events_pb2.Event], out: TextIO) -> int:
    count = 0
    for event in events:
        print(event_line(event), file=out, flush=True)
        count += 1
    return count


def print_event_documents(events: Iterable[events_pb2.Event], out: TextIO) -> int:
    """JSON Lines: one event object per line, printed as it comes (`events --follow --output json`)."""
    count = 0
    for event in events:
        print(json.dumps(message_document(event), ensure_ascii=False), file=out, flush=True)
        count += 1
    return count


def events(args: argparse.Namespace) -> int:
    conn = connection(args)
    request = scheduler_pb2.ListEventsRequest(job_id=validate_id(args.job_id, "job id"), follow=args.follow)
    stream = conn.scheduler().ListEvents(request, metadata=conn.metadata)
    if wants_json(args) and args.follow:
        print_event_documents(stream, sys.stdout)
        return 0
    if wants_json(args):
        print_json([message_document(event) for event in stream])
        return 0
    count = print_events(stream, sys.stdout)
    if not count:
        print("no events")
    return 0


def register(group: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = group.add_parser(
        "events",
        parents=parents,
        help=command_help("events"),
        description="Print a job's events from its workspace's events stream, one line each: "
        "time (UTC), kind, state, stage, items done/total, message.",
    )
    p.add_argument("--job-id", "-j", required=True)
    p.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing new events until the job ends (Ctrl-C stops); with --output json, "
        "one JSON object per line",
    )
    add_output_option(p)
    p.set_defaults(func=events)
