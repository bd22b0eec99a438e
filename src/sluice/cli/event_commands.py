"""`sluice events --job-id J [--follow] [--since T]`: a job's events, one line each, oldest first."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TextIO

from sluice.cli.commands import command_help
from sluice.cli.context import connection
from sluice.cli.output import add_output_option, message_document, print_json, wants_json
from sluice.ids import validate_id
from sluice.v1 import events_pb2, scheduler_pb2

_PREFIX = "EVENT_TYPE_"
_AGO = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def since_time(text: str, now: datetime | None = None) -> datetime:
    """--since: a time (ISO 8601; UTC when it names no zone) or how long ago ("90s", "10m", "2h",
    "1d")."""
    ago = _AGO.fullmatch(text.strip())
    try:
        if ago:
            return (now or datetime.now(UTC)) - timedelta(seconds=float(ago[1]) * _UNIT_S[ago[2]])
        when = datetime.fromisoformat(text.strip())
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"must be a time such as 2026-12-01T09:30:00Z or how long ago such as 10m, 2h or 1d, not {text!r}"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


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
    if args.since is not None:
        request.since.FromDatetime(args.since)
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
    p.add_argument(
        "--since",
        type=since_time,
        metavar="TIME",
        help="only events at or after this time: ISO 8601 (UTC unless it says), or how long ago: "
        "90s, 10m, 2h, 1d",
    )
    add_output_option(p)
    p.set_defaults(func=events)
