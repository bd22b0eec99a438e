"""How fast the `sluice` command line starts: `--help`, `list-jobs` and `show-job-details`.

Starts a local stack in a temporary folder (`sluice up --no-dashboard`), stages one small image
and starts one job on it, then runs each command `--runs` times as a subprocess of the venv's
`sluice` script (what a user types) and prints the median, min and max seconds beside the
issue's target (under 0.2 s). Three rows give the floor: the interpreter alone (`python -c pass`),
the import of sluice.cli.main and that of grpc with the scheduler's generated stubs (which every
verb that calls a service needs), each timed inside a fresh interpreter. The stack is always taken
down and the folder removed.

    python -m bench.cli_start [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.report import aligned
from bench.stack import CliError, LocalStack
from bench.targets import Target, summary

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "workflows" / "text-detection.json"
TARGET_S = 0.2
BATCH_ID = "cli-start"
JOB_ID = "cli-start"
# A 16x16 grey JPEG (the job's one image: the bench times the CLI, not the job).
_TINY_JPEG_SIDE = 16


@dataclass(frozen=True)
class Timing:
    what: str
    seconds: list[float]
    target: Target | None
    """None for the floor rows (no target of their own)."""


def sluice_command() -> list[str]:
    """The venv's `sluice` script (what `pip install` puts beside the interpreter)."""
    script = Path(sys.executable).with_name("sluice")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "sluice.cli.main"]


def user_env() -> dict[str, str]:
    """The bench's environment as a user's shell has it: Python writes and reads its bytecode
    cache (a PYTHONDONTWRITEBYTECODE of the machine would make every run compile the project's
    own modules again, some 30 ms a command)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def time_command(command: Sequence[str], runs: int) -> list[float]:
    """Wall seconds of each of `runs` runs of `command`, after one untimed run that fills the
    bytecode cache; RuntimeError when one fails."""
    seconds = []
    env = user_env()
    for run in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=env)
        if run == 0 and done.returncode == 0:
            continue
        seconds.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    return seconds


def time_import(runs: int, module: str = "sluice.cli.main") -> list[float]:
    """Seconds `import <module>` takes inside a fresh interpreter, `runs` times."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    seconds = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env=user_env(),
        )
        seconds.append(float(done.stdout.strip().splitlines()[-1]))
    return seconds


async def seed_job(stack: LocalStack, images_dir: Path) -> None:
    """One image in a batch, the text-detection workflow and a job over them, waited for."""
    import cv2
    import numpy as np

    image = np.full((_TINY_JPEG_SIDE, _TINY_JPEG_SIDE, 3), 128, np.uint8)
    images_dir.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(images_dir / "grey.jpg"), image)
    await stack.cli("data-staging", "create-batch-of-images", "-i", str(images_dir), "-b", BATCH_ID)
    await stack.cli("workflows", "create", "-w", "text-detection", "-f", str(WORKFLOW))
    await stack.cli(
        *("batch-processing", "process-images-with-workflow", "-w", "text-detection"),
        *("-b", BATCH_ID, "-j", JOB_ID, "--wait"),  # done before the timing: the stack idle
    )


def measure(state: Path, runs: int) -> list[Timing]:
    sluice = sluice_command()
    state_dir = ("--state-dir", str(state))
    commands = [
        ("sluice --help", [*sluice, "--help"]),
        ("sluice batch-processing list-jobs", [*sluice, "batch-processing", "list-jobs", *state_dir]),
        (
            "sluice batch-processing show-job-details",
            [*sluice, "batch-processing", "show-job-details", "--job-id", JOB_ID, *state_dir],
        ),
    ]
    timings = [
        Timing(
            "python -c pass (the interpreter alone)", time_command([sys.executable, "-c", "pass"], runs), None
        ),
        Timing("import sluice.cli.main (in a fresh interpreter)", time_import(runs), None),
        Timing(
            "import grpc and the scheduler's stubs (what an RPC verb needs)",
            time_import(runs, "sluice.v1.scheduler_pb2_grpc"),
            None,
        ),
    ]
    for what, command in commands:
        seconds = time_command(command, runs)
        target = Target(what, statistics.median(seconds), TARGET_S, at_least=False, unit=" s")
        timings.append(Timing(what, seconds, target))
    return timings


def render(timings: Sequence[Timing], runs: int, script: str) -> str:
    cells: list[Sequence[str] | None] = [("command", "runs", "median s", "min s", "max s", "target")]
    for t in timings:
        cells.append(
            (
                t.what,
                str(len(t.seconds)),
                f"{statistics.median(t.seconds):.3f}",
                f"{min(t.seconds):.3f}",
                f"{max(t.seconds):.3f}",
                t.target.cell() if t.target else "-",
            )
        )
    lines = [
        aligned(cells, right={1, 2, 3, 4}),
        "",
        f"each command run {runs} times as a subprocess of {script}, after one untimed run, with Python's"
        " bytecode cache on; the stack idle, one job in it",
        summary([t.target for t in timings if t.target]),
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.cli_start", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.runs < 1:
        print("--runs must be at least 1", file=sys.stderr)
        return 2
    started = time.perf_counter()
    work_dir = Path(tempfile.mkdtemp(prefix="sluice-bench-cli-", dir="/tmp"))
    work_dir.chmod(0o755)  # Postgres runs as another user and must reach its folder
    stack = LocalStack(work_dir / "state")
    try:
        up_s = stack.up(["--no-dashboard", "--workers-per-machine", "1"])
        asyncio.run(seed_job(stack, work_dir / "images"))
        timings = measure(stack.state, args.runs)
    except (CliError, RuntimeError, subprocess.SubprocessError) as error:
        print(f"bench failed: {error}\n{stack.log_tails()}", file=sys.stderr)
        return 1
    finally:
        stack.down()
        shutil.rmtree(work_dir, ignore_errors=True)
    print(render(timings, args.runs, " ".join(sluice_command())))
    print(f"sluice up {up_s:.1f} s; bench took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
