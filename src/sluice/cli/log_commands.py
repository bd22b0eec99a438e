"""`sluice batch-processing fetch-logs`: a job's log records, page by page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from sluice.cli.context import Connection, connection
from sluice.ids import validate_id
from sluice.job_states import SEVERITIES, SEVERITY_CHOICES
from sluice.v1 import scheduler_pb2


def _line(record: scheduler_pb2.LogRecord) -> str:
    time = record.time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    task = f" [{record.task_id}]" if record.task_id else ""
    return f"{time}  {SEVERITIES.get(record.severity, '?'):7}  {record.source}{task}: {record.message}"


def _print_all(conn: Connection, request: scheduler_pb2.FetchLogsRequest, out: TextIO) -> int:
    count = 0
    while True:
        page = conn.scheduler().FetchLogs(request, metadata=conn.metadata)
        for record in page.records:
            print(_line(record), file=out)
        count += len(page.records)
        if not page.next_page_token:
            return count
        request.page_token = page.next_page_token


def fetch_logs(args: argparse.Namespace) -> int:
    conn = connection(args)
    job_id = validate_id(args.job_id, "job id")
    request = scheduler_pb2.FetchLogsRequest(job_id=job_id)
    if args.log_severity:
        request.min_severity = SEVERITY_CHOICES[args.log_severity]
    if args.output_file:
        with Path(args.output_file).open("w", encoding="utf-8") as handle:
            count = _print_all(conn, request, handle)
    else:
        count = _print_all(conn, request, sys.stdout)
    if args.output_file:
        print(f"{count} log records written to {args.output_file}")
    elif not count:
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
    p.set_defaults(func=fetch_logs)
