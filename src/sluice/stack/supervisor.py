"""The one-machine stack: `up` starts what is not running, `down` stops it, state stays on disk.

Start order: NATS, Postgres (database `sluice`), then staging, scheduler, worker and exporter, each
detached with its output in logs/<part>.log. Ports are remembered in stack.json and reused.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sluice.config import Settings
from sluice.errors import FailedPrecondition, InvalidArgument, Unavailable
from sluice.stack.health import grpc_serving
from sluice.stack.nats_process import nats_marker, nats_ready, start_nats
from sluice.stack.ports import LOOPBACK, free_port, port_is_free
from sluice.stack.postgres_process import (
    PostgresServer,
    ensure_database,
    postgres_marker,
    postgres_ready,
    start_postgres,
)
from sluice.stack.processes import log_size, log_tail, pid_alive, spawn, stop_pid
from sluice.stack.services import PARTS, SERVICE_STOP_ORDER, SERVICES, service_command, service_marker
from sluice.stack.stack_status import StackStatus, is_running, status
from sluice.stack.state import (
    Layout,
    PartRecord,
    StackFile,
    ensure_secrets,
    prepare_state_dir,
    write_credentials,
)

__all__ = ["StackStatus", "down", "status", "up"]

DATABASE = "sluice"
MACHINE_TYPES = ("cpu", "gpu")
SERVICE_READY_TIMEOUT_S = 60.0
SERVICE_STOP_TIMEOUT_S = 20.0
LOCK_TIMEOUT_S = 120.0

Signals = list[tuple[signal.Signals, float]]


@contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    """One `up` or `down` at a time per state folder."""
    with layout.lock_file.open("w") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise FailedPrecondition(
                        f"another `sluice up` or `sluice down` holds {layout.root}"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log_header(log_file: Path, part: str) -> int:
    """Mark the start of a run in the part's log; returns the offset the run's output starts at."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    since = log_size(log_file)
    with log_file.open("a") as log:
        log.write(f"=== sluice up: starting {part} at {datetime.now(UTC).isoformat()} ===\n")
    return since


def _wait(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _choose_ports(stack: StackFile, requested: Mapping[str, int], running: set[str]) -> dict[str, int]:
    """A port per part: the running one's, else the requested, else the remembered, else free."""
    chosen: dict[str, int] = {}
    for part in PARTS:
        record = stack.parts.get(part)
        want = requested.get(part)
        taken = set(chosen.values())
        if part in running and record is not None:
            if want and want != record.port:
                raise FailedPrecondition(
                    f"{part} is running on port {record.port}: run `sluice down` before moving "
                    f"it to port {want}"
                )
            port = record.port
        elif want:
            if want in taken or not port_is_free(want):
                raise FailedPrecondition(f"port {want} asked for {part} is already in use")
            port = want
        elif record and record.port and record.port not in taken and port_is_free(record.port):
            port = record.port
        else:
            port = free_port()
            while port in taken:
                port = free_port()
        chosen[part] = port
    return chosen


_TERM = [(signal.SIGTERM, SERVICE_STOP_TIMEOUT_S)]
_FAST_SHUTDOWN = [(signal.SIGINT, 20.0), (signal.SIGQUIT, 5.0)]


def _running_and_ready(
    record: PartRecord, ready: Callable[[], bool], grace_s: float, signals: Signals = _TERM
) -> bool:
    """True when the recorded process runs and gets ready within `grace_s`; else it is stopped."""
    if not is_running(record):
        return False
    if _wait(ready, grace_s):
        return True
    if record.pid is not None:
        stop_pid(record.pid, signals)
    return False


def _ensure_nats(layout: Layout, stack: StackFile, port: int, started: list[str]) -> str:
    record = stack.record("nats")
    if not _running_and_ready(record, lambda: nats_ready(record.port), 5.0):
        log_file = layout.log("nats")
        _log_header(log_file, "nats")
        try:
            server = start_nats(layout.nats_dir, port=port, log_file=log_file, detached=True)
        except RuntimeError as error:
            raise Unavailable(str(error)) from error
        record.pid, record.port = server.pid, server.port
        record.marker = nats_marker(layout.nats_dir)
        stack.save(layout)
        started.append("nats")
    return f"nats://{LOOPBACK}:{record.port}"


def _ensure_postgres(layout: Layout, stack: StackFile, port: int, started: list[str]) -> str:
    record = stack.record("postgres")
    if not _running_and_ready(record, lambda: postgres_ready(record.port), 10.0, _FAST_SHUTDOWN):
        log_file = layout.log("postgres")
        _log_header(log_file, "postgres")
        try:
            server = start_postgres(layout.postgres_dir, port=port, log_file=log_file, detached=True)
        except RuntimeError as error:
            raise Unavailable(str(error)) from error
        record.pid, record.port = server.pid, server.port
        record.marker = postgres_marker(layout.postgres_dir)
        stack.save(layout)
        started.append("postgres")
    assert record.pid is not None
    server = PostgresServer(None, record.pid, record.port, layout.postgres_dir / "data")
    try:
        return ensure_database(server, DATABASE)
    except RuntimeError as error:
        raise Unavailable(str(error)) from error


def _start_service(
    layout: Layout,
    stack: StackFile,
    name: str,
    cmd: list[str],
    env: Mapping[str, str],
    digest: str,
) -> int | None:
    """Start service `name` unless the same one runs and serves; returns its log offset if started."""
    record = stack.record(name)
    address = f"{LOOPBACK}:{record.port}"
    if record.env_digest == digest and _running_and_ready(record, lambda: grpc_serving(address), 5.0):
        return None
    if is_running(record) and record.pid is not None:
        stop_pid(record.pid, _TERM)
    since = _log_header(layout.log(name), name)
    try:
        _, pid = spawn(cmd, layout.log(name), env=env, cwd=layout.root, detached=True)
    except RuntimeError as error:
        raise Unavailable(str(error)) from error
    record.pid, record.env_digest = pid, digest
    record.marker = service_marker(name, address)
    stack.save(layout)
    return since


def _wait_service(layout: Layout, name: str, record: PartRecord, since: int) -> str | None:
    """None once service `name` serves; else why not, with the last lines of its log."""
    address = f"{LOOPBACK}:{record.port}"
    log_file = layout.log(name)
    deadline = time.monotonic() + SERVICE_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if grpc_serving(address):
            return None
        if not pid_alive(record.pid):
            return f"{name} exited while starting; last lines of {log_file}:\n" + log_tail(
                log_file, since=since
            )
        time.sleep(0.2)
    return (
        f"{name} did not report SERVING on {address} within {SERVICE_READY_TIMEOUT_S:.0f} s; "
        f"last lines of {log_file}:\n" + log_tail(log_file, since=since)
    )


def _digest(cmd: list[str], settings_env: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps([cmd, sorted(settings_env.items())]).encode()).hexdigest()


def up(
    state_dir: Path,
    ports: dict[str, int] | None = None,
    workers_per_machine: int = 2,
    machine_type: str = "cpu",
) -> StackStatus:
    """Start every part of the stack in `state_dir` that is not running; returns the status."""
    requested = {part: port for part, port in (ports or {}).items() if port}
    unknown = sorted(set(requested) - set(PARTS))
    if unknown:
        raise InvalidArgument(f"unknown parts {', '.join(unknown)}; known: {', '.join(PARTS)}")
    if any(not 0 < port < 65536 for port in requested.values()):
        raise InvalidArgument("ports must be between 1 and 65535")
    if workers_per_machine < 1:
        raise InvalidArgument("--workers-per-machine must be at least 1")
    if machine_type not in MACHINE_TYPES:
        raise InvalidArgument(f"--machine-type must be one of {', '.join(MACHINE_TYPES)}")
    layout = prepare_state_dir(state_dir)
    started: list[str] = []
    with _locked(layout):
        stack = StackFile.load(layout)
        for part in PARTS:
            stack.record(part)
        running = {part for part in PARTS if is_running(stack.parts.get(part))}
        chosen = _choose_ports(stack, requested, running)
        for part in SERVICES:
            stack.record(part).port = chosen[part]
        api_key, token = ensure_secrets(layout)
        nats_url = _ensure_nats(layout, stack, chosen["nats"], started)
        database_url = _ensure_postgres(layout, stack, chosen["postgres"], started)
        staging, scheduler = (f"{LOOPBACK}:{chosen[name]}" for name in ("staging", "scheduler"))
        settings = Settings(
            database_url=database_url,
            nats_url=nats_url,
            store_url=layout.objects_dir.resolve().as_uri(),
            staging_address=staging,
            scheduler_address=scheduler,
            api_keys_file=layout.api_keys_file,
            internal_token=token,
            log_level=os.environ.get("SLUICE_LOG_LEVEL", "INFO"),
        )
        write_credentials(layout, api_key, staging, scheduler)
        settings_env = settings.to_env()
        env = {**os.environ, **settings_env, "PYTHONUNBUFFERED": "1"}
        waiting: dict[str, int] = {}
        for name in SERVICES:
            address = f"{LOOPBACK}:{chosen[name]}"
            cmd = service_command(name, address, machine_type, workers_per_machine)
            since = _start_service(layout, stack, name, cmd, env, _digest(cmd, settings_env))
            if since is not None:
                waiting[name] = since
        started.extend(waiting)
        failures = [
            failure
            for name, since in waiting.items()
            if (failure := _wait_service(layout, name, stack.record(name), since))
        ]
        if failures:
            raise Unavailable("\n".join(failures) + "\n(stop the rest with `sluice down`)")
    return status(layout.root, started)


def _stop_part(record: PartRecord | None, signals: Signals) -> None:
    if record is None:
        return
    if is_running(record) and record.pid is not None:
        stop_pid(record.pid, signals)
    record.pid = None


def down(state_dir: Path) -> StackStatus:
    """Stop the services (worker first), then NATS, then Postgres; state stays for the next `up`."""
    layout = Layout(state_dir.absolute())
    if not layout.stack_file.exists():
        return status(layout.root)
    with _locked(layout):
        stack = StackFile.load(layout)
        for name in SERVICE_STOP_ORDER:
            _stop_part(stack.parts.get(name), _TERM)
        _stop_part(stack.parts.get("nats"), [(signal.SIGTERM, 10.0)])
        _stop_part(stack.parts.get("postgres"), _FAST_SHUTDOWN)
        stack.save(layout)
    return status(layout.root)
