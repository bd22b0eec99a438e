"""`sluice up`, `sluice status` and `sluice down`: the local stack on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from sluice.stack.services import DASHBOARD, PARTS
from sluice.stack.state import default_state_dir
from sluice.stack.supervisor import StackStatus, down, status, up


def _state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="folder with the stack's state (default: $SLUICE_HOME, else ./.sluice)",
    )


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir).absolute() if args.state_dir else default_state_dir()


def _print_status(result: StackStatus) -> None:
    rows = [("PART", "STATE", "ADDRESS", "PID", "RESTARTS")]
    for part in result.parts:
        if part.name == DASHBOARD and not result.dashboard_enabled and not part.pid:
            rows.append((part.name, "off", "-", "-", "-"))
            continue
        state = "started" if part.started and part.up else part.state
        address = f"http://{part.address}" if part.name == DASHBOARD and part.address else part.address
        rows.append((part.name, state, address or "-", str(part.pid or "-"), str(part.restarts)))
    watchdog = result.watchdog
    state = "started" if watchdog.started and watchdog.up else watchdog.state
    rows.append((watchdog.name, state, "-", str(watchdog.pid or "-"), "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"logs: {result.logs_dir}")


def _up(args: argparse.Namespace) -> int:
    ports = {part: getattr(args, f"{part}_port") for part in PARTS}
    result = up(
        _state_dir(args),
        ports={part: port for part, port in ports.items() if port},
        workers_per_machine=args.workers_per_machine,
        machine_type=args.machine_type,
        dashboard=not args.no_dashboard,
    )
    _print_status(result)
    print(f"credentials: {result.credentials_file}")
    board = result.part(DASHBOARD)
    if result.dashboard_enabled and board.up:
        print(f"dashboard: http://{board.address} (sign in with the api_key in {result.credentials_file})")
    return 0 if result.up else 1


def _status(args: argparse.Namespace) -> int:
    _print_status(status(_state_dir(args)))
    return 0


def _down(args: argparse.Namespace) -> int:
    _print_status(down(_state_dir(args)))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `up`, `status` and `down` to the main parser's subcommands."""
    up_parser = sub.add_parser("up", help="start the local stack (NATS, Postgres and the services)")
    _state_dir_option(up_parser)
    for part in PARTS:
        up_parser.add_argument(
            f"--{part}-port", type=int, default=None, help=f"port for {part} (default: a free one)"
        )
    up_parser.add_argument(
        "--workers-per-machine", type=int, default=2, help="task slots of the worker (default 2)"
    )
    up_parser.add_argument(
        "--machine-type", choices=("cpu", "gpu"), default="cpu", help="the worker's kind (default cpu)"
    )
    up_parser.add_argument(
        "--no-dashboard", action="store_true", help="do not start the dashboard (stop it if it runs)"
    )
    up_parser.set_defaults(func=_up)

    status_parser = sub.add_parser("status", help="show what runs in the local stack")
    _state_dir_option(status_parser)
    status_parser.set_defaults(func=_status)

    down_parser = sub.add_parser("down", help="stop the local stack, keeping its state")
    _state_dir_option(down_parser)
    down_parser.set_defaults(func=_down)
