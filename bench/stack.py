"""A local stack the bench drives as a user does: `sluice up` / `down` and CLI subprocesses.

One state folder holds NATS, Postgres, the object store and the logs; `up` again after `down`
keeps what was stored (batches, workflows, models), so the bench restarts the stack with other
worker options without staging the images again.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from sluice.stack.state import Layout, load_credentials


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


def up_options(workers: int, ort_threads: int | None = None, batch_size: int | None = None) -> list[str]:
    """`sluice up` options: K slots, no dashboard, and the worker's ORT threads and batch size when set."""
    options = ["--workers-per-machine", str(workers), "--no-dashboard"]
    if ort_threads is not None:
        options += ["--ort-threads", str(ort_threads)]
    if batch_size is not None:
        options += ["--worker-batch-size", str(batch_size)]
    return options


def up_accepts(option: str) -> bool:
    """Whether this checkout's `sluice up` has `option` (e.g. --ort-threads)."""
    shown = subprocess.run(
        [sys.executable, "-m", "sluice.cli.main", "up", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return option in shown.stdout


class LocalStack:
    """`sluice up` in `state` (which must be reachable by other users, 0755: Postgres runs
    unprivileged), the CLI against it, and its addresses and API key once it is up."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.options: list[str] = []

    def up(self, options: list[str], timeout_s: float = 300.0) -> float:
        """Start the stack; returns the seconds `sluice up` took. Raises CliError when it fails."""
        started = time.perf_counter()
        done = subprocess.run(
            cli_command(self.state, "up", *options),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise CliError(
                f"sluice up {' '.join(options)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        self.options = options
        return time.perf_counter() - started

    def down(self) -> None:
        """`sluice down` (never raises: it runs on the way out)."""
        if self.state.exists():
            sluice_down(self.state)

    @property
    def scheduler_address(self) -> str:
        return load_credentials(self.state)["scheduler_address"]

    @property
    def staging_address(self) -> str:
        return load_credentials(self.state)["staging_address"]

    @property
    def api_key(self) -> str:
        return load_credentials(self.state)["api_key"]

    async def cli(self, *args: str, timeout_s: float = 120.0) -> str:
        return await cli(self.state, *args, timeout_s=timeout_s)

    def log_tails(self, chars: int = 2000) -> str:
        return log_tails(self.state, chars)
