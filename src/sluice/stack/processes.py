"""Starting, finding and stopping local processes by pid, and reading their logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# A tiny launcher that starts the command in a new session and exits at once, so the command is
# not our child: it outlives us, and we never have to reap it.
_LAUNCHER = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log,"
    " stderr=subprocess.STDOUT, start_new_session=True)\n"
    "print(p.pid, flush=True)\n"
)


def spawn(
    cmd: Sequence[str],
    log_file: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    detached: bool = False,
) -> tuple[subprocess.Popen[bytes] | None, int]:
    """Start `cmd` with stdout and stderr appended to `log_file`; returns (process, pid).

    Detached, the process runs in its own session and is not our child (process is None).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    environ = dict(env) if env is not None else None
    if detached:
        launched = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(log_file), *cmd],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=environ,
            cwd=cwd,
            check=False,
            timeout=30,
        )
        if launched.returncode != 0:
            error = launched.stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"cannot start {cmd[0]}: {error[-1] if error else 'unknown error'}")
        return None, int(launched.stdout.split()[0])
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environ,
            cwd=cwd,
        )
    return process, process.pid


def pid_alive(pid: int | None) -> bool:
    """Whether `pid` is a running process (a zombie counts as gone; our own zombies are reaped)."""
    if not pid or pid <= 0:
        return False
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def cmdline(pid: int) -> str:
    """The command line of `pid`, arguments joined by spaces ('' if unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def is_our_process(pid: int | None, marker: str) -> bool:
    """Whether `pid` runs and its command line contains `marker` (guards against reused pids)."""
    return pid is not None and pid_alive(pid) and marker in cmdline(pid)


def wait_gone(pid: int, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> bool:
    """Wait up to `timeout_s` for `pid` to exit; True when it did."""
    if process is not None:
        try:
            process.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop_pid(
    pid: int,
    signals: Sequence[tuple[signal.Signals, float]],
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Send each (signal, wait seconds) in turn until `pid` exits; SIGKILL as the last resort."""
    for sig, wait_s in [*signals, (signal.SIGKILL, 5.0)]:
        if not pid_alive(pid) and (process is None or process.poll() is not None):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_gone(pid, wait_s, process):
            return
    raise RuntimeError(f"process {pid} did not exit after SIGKILL")


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_tail(path: Path, lines: int = 20, since: int = 0) -> str:
    """The last `lines` lines of `path` written after byte offset `since`."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(since, 0))
            text = handle.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    tail = text.strip().splitlines()[-lines:]
    return "\n".join(tail) if tail else f"(nothing in {path})"
