"""The CLI against a real local stack (`sluice up` in a folder of its own), for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path


def sluice(
    state: Path, *args: str, check: bool = True, timeout_s: float = 900, api_key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `sluice ARGS --state-dir STATE` (as `api_key` when given, else the stack's own key);
    AssertionError with its output when it fails and `check`."""
    command = [sys.executable, "-m", "sluice.cli.main", *args, "--state-dir", str(state)]
    env = {**os.environ, "SLUICE_API_KEY": api_key} if api_key else None
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"sluice {' '.join(args)} failed:\\n{result.stdout}\\n{result.stderr}")
    return result


def local_stack(prefix: str, *, dashboard: bool = False) -> Generator[Path, None, None]:
    """A started stack's state folder (reachable by the unprivileged Postgres user), with the
    dashboard only when asked (it is one more process to start); on the way out it stops the
    stack, prints the tail of every log and removes the folder."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    folder.chmod(0o755)
    sluice(folder, "up", *(() if dashboard else ("--no-dashboard",)))
    try:
        yield folder
    finally:
        sluice(folder, "down", check=False)
        logs = folder / "logs"
        if logs.exists():
            for log in logs.glob("*.log"):
                print(f"--- {log.name}\\n{log.read_text()[-3000:]}")
        shutil.rmtree(folder, ignore_errors=True)
