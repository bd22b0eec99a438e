"""`sluice up`, `sluice status` and `sluice down`: the local stack on this machine."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.cli.commands import command_help
from sluice.stack.services import DASHBOARD, DASHBOARD_NOT_INSTALLED, PARTS
from sluice.stack.state import default_state_dir

if TYPE_CHECKING:
    from sluice.stack.stack_status import PartStatus, StackStatus
    from sluice.stack.state import UpOptions


def _state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="folder with the stack's state (default: $SLUICE_HOME, else ./.sluice)",
    )


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir).absolute() if args.state_dir else default_state_dir()


def _part_row(result: StackStatus, part: PartStatus) -> dict[str, str | int | None]:
    """One part as `status` shows it: name, state, address, pid, restarts (None: not shown)."""
    if part.name == DASHBOARD and not result.dashboard_enabled and not part.pid:
        return {"name": part.name, "state": "off", "address": None, "pid": None, "restarts": None}
    state = "started" if part.started and part.up else part.state
    address = f"http://{part.address}" if part.name == DASHBOARD and part.address else part.address
    return {
        "name": part.name,
        "state": state,
        "address": address or None,
        "pid": part.pid,
        "restarts": part.restarts,
    }


def _rows(result: StackStatus) -> list[dict[str, str | int | None]]:
    watchdog = _part_row(result, result.watchdog)
    watchdog.update(address=None, restarts=None)
    return [*(_part_row(result, part) for part in result.parts), watchdog]


def _worker_line(options: UpOptions) -> str:
    """The worker's options, as `up` was asked for them."""
    threads = "auto" if options.ort_threads is None else str(options.ort_threads)
    batch = "default" if options.worker_batch_size is None else str(options.worker_batch_size)
    return (
        f"worker: {options.machine_type}, {options.workers_per_machine} slots, "
        f"ort threads {threads}, batch size {batch}"
    )


def _print_status(result: StackStatus) -> None:
    columns = ("name", "state", "address", "pid", "restarts")
    rows: list[list[str]] = [["PART", "STATE", "ADDRESS", "PID", "RESTARTS"]]
    for row in _rows(result):
        rows.append(["-" if row[column] is None else str(row[column]) for column in columns])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for line in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    if result.part("worker").address:
        print(_worker_line(result.options))
    print(f"logs: {result.logs_dir}")


def _print_status_json(result: StackStatus) -> None:
    """`status --output json`: {"parts": [...], "options": {...}, "logs_dir": ...} on one line."""
    document = {"parts": _rows(result), "options": asdict(result.options), "logs_dir": str(result.logs_dir)}
    print(json.dumps(document))


def _up(args: argparse.Namespace) -> int:
    from sluice.stack.supervisor import up  # process code: imported by the verbs that run it

    ports = {part: getattr(args, f"{part}_port") for part in PARTS}
    result = up(
        _state_dir(args),
        ports={part: port for part, port in ports.items() if port},
        workers_per_machine=args.workers_per_machine,
        machine_type=args.machine_type,
        dashboard=not args.no_dashboard,
        ort_threads=args.ort_threads,
        worker_batch_size=args.worker_batch_size,
    )
    _print_status(result)
    print(f"credentials: {result.credentials_file}")
    if result.dashboard_missing:
        print(DASHBOARD_NOT_INSTALLED)
    board = result.part(DASHBOARD)
    if result.dashboard_enabled and board.up:
        print(f"dashboard: http://{board.address} (sign in with the api_key in {result.credentials_file})")
    return 0 if result.up else 1


def _status(args: argparse.Namespace) -> int:
    from sluice.stack.supervisor import status

    result = status(_state_dir(args))
    if args.output == "json":
        _print_status_json(result)
    else:
        _print_status(result)
    return 0


def _down(args: argparse.Namespace) -> int:
    from sluice.stack.supervisor import down

    _print_status(down(_state_dir(args)))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `up`, `status` and `down` to the main parser's subcommands."""
    up_parser = sub.add_parser("up", help=command_help("up"))
    _state_dir_option(up_parser)
    for part in PARTS:
        up_parser.add_argument(
            f"--{part}-port", type=int, default=None, help=f"port for {part} (default: a free one)"
        )
    up_parser.add_argument(
        "--workers-per-machine", type=int, default=2, help="task slots of the worker (default 2)"
    )
    up_parser.add_argument(
        "--ort-threads",
        type=int,
        default=None,
        help="ONNX Runtime threads per model session of the worker (default: the worker's usable "
        "CPUs divided among its slots)",
    )
    up_parser.add_argument(
        "--worker-batch-size",
        type=int,
        default=None,
        help="images of a task per workflow run of the worker (default: the worker's own: 1, or 8 "
        "for a workflow whose images take under 2 ms each)",
    )
    up_parser.add_argument(
        "--machine-type", choices=("cpu", "gpu"), default="cpu", help="the worker's kind (default cpu)"
    )
    up_parser.add_argument(
        "--no-dashboard", action="store_true", help="do not start the dashboard (stop it if it runs)"
    )
    up_parser.set_defaults(func=_up)

    status_parser = sub.add_parser("status", help=command_help("status"))
    _state_dir_option(status_parser)
    status_parser.add_argument(
        "--output",
        choices=("table", "json"),
        default="table",
        help="a table (default) or one JSON object: parts (name, state, address, pid, restarts) "
        "and the options of `up`",
    )
    status_parser.set_defaults(func=_status)

    down_parser = sub.add_parser("down", help=command_help("down"))
    _state_dir_option(down_parser)
    down_parser.set_defaults(func=_down)
