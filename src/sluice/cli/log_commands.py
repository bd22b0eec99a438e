"""`sluice batch-processing fetch-logs`: a job's log records, page by page."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from sluice.cli.context import Connection, connection
from sluice.cli.output import add_output_option, message_document, print_json, wants_json
from sluice.ids import validate_id
from sluice.job_states import SEVERITIES, SEVERITY_CHOICES
from sluice.v1 import scheduler_pb2


def _line(record: scheduler_pb2.LogRecord) -> str:
    time = record.time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    task = f" [{record.task_id}]" if record.task_id else ""
    return f"{time}  {SEVERITIES.get(record.severity, '?'):7}  {record.source}{task}: {record.message}"


def _pages(conn: Connection, request: scheduler_pb2.FetchLogsRequest) -> Iterator[scheduler_pb2.LogRecord]:
    while True:
        page = conn.scheduler().FetchLogs(request, metadata=conn.metadata)
        yield from page.records
        if not page.next_page_token:
            return
        request.page_token = page.next_page_token


def _print_all(records: Iterable[scheduler_pb2.LogRecord], out: TextIO, as_json: bool) -> int:
    """One line per record, or (as_json) one JSON list of them; how many there were."""
    if as_json:
        documents = [message_document(record) for record in records]
        print_json(documents, out)
        return len(documents)
    count = 0
    for record in records:
        print(_line(record), file=out)
        count += 1
    return count


def fetch_logs(args: argparse.Namespace) -> int:
    conn = connection(args)
    job_id = validate_id(args.job_id, "job id")
    request = scheduler_pb2.FetchLogsRequest(job_id=job_id)
    if args.log_severity:
        request.min_severity = SEVERITY_CHOICES[args.log_severity]
    as_json = wants_json(args)
    if args.output_file:
        with Path(args.output_file).open("w", encoding="utf-8") as handle:
            count = _print_all(_pages(conn, request), handle, as_json)
    else:
        count = _print_all(_pages(conn, request), sys.stdout, as_json)
    if args.output_file:
        # In JSON mode stdout holds documents only, so the count goes to stderr.
        said = f"{count} log records written to {args.output_file}"
        print(said, file=sys.stderr if as_json else sys.stdout)
    elif not count and not as_json:
        print("no log records")
    return 0


def register(group: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = group.add_parser("fetch-logs", parents=parents, help="print a job's log records, oldest first")
    p.add_argument("--job-id", "-j", required=True)
    p.add_argument(
        "--log-severity",
        choices=list(SEVERITY_CHOICES),
        help="at least this severity",
    )
    p.add_argument("--output-file", help="write the records to this file instead of printing them")
    add_output_option(p)
    p.set_defaults(func=fetch_logs)
