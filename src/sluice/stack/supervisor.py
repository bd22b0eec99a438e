"""The one-machine stack: `up` starts what is not running, `down` stops it, state stays on disk.

Start order: NATS, Postgres (database `sluice`), then staging, scheduler, worker and exporter, each
detached with its output in logs/<part>.log, then the dashboard (unless `--no-dashboard`, or
this Python lacks Streamlit: the `[dashboard]` extra), then the watchdog (sluice.stack.watchdog),
which restarts a part that dies; `down` stops the watchdog first, then the dashboard. Ports and
the options of `up` (the worker's slots, ONNX Runtime threads and batch size among them) are
remembered in stack.json and reused. `start_part` is the one place a part's command and
environment are made, for `up` and the watchdog alike.

NATS runs with authorization (nats/nats.conf, including nats/users.conf): the services connect
as user `sluice` with the internal token as password, and each API key is a user of its
workspace's account, which the scheduler writes into users.conf (`sluice.nats_auth`). The token
reaches the services in their environment only, never stack.json, a command line or a log. The
dashboard gets only the services' addresses: it acts with the API key each browser signs in with.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sluice.auth import read_keys_file
from sluice.config import Settings
from sluice.errors import FailedPrecondition, InvalidArgument, Unavailable
from sluice.nats_auth import admits, render_users, service_password_hash, write_users_file
from sluice.stack.health import grpc_serving, http_healthy
from sluice.stack.nats_process import nats_config_marker, nats_ready, start_nats, write_nats_config
from sluice.stack.ports import LOOPBACK, free_port, port_is_free
from sluice.stack.postgres_process import (
    PostgresServer,
    ensure_database,
    postgres_marker,
    postgres_ready,
    start_postgres,
)
from sluice.stack.processes import log_size, log_tail, pid_alive, spawn, stop_pid
from sluice.stack.services import (
    DASHBOARD,
    PARTS,
    SERVICE_STOP_ORDER,
    SERVICES,
    WATCHDOG,
    dashboard_installed,
    service_command,
    service_marker,
    watchdog_command,
    watchdog_marker,
)
from sluice.stack.stack_status import StackStatus, is_running, status
from sluice.stack.state import (
    Layout,
    PartRecord,
    StackFile,
    UpOptions,
    ensure_secrets,
    prepare_state_dir,
    write_credentials,
)
from sluice.webhook_addresses import PRIVATE_ADDRESSES_ENV

__all__ = ["StackStatus", "down", "locked", "start_part", "status", "up"]

DATABASE = "sluice"
MACHINE_TYPES = ("cpu", "gpu")
SERVICE_READY_TIMEOUT_S = 60.0
SERVICE_STOP_TIMEOUT_S = 20.0
LOCK_TIMEOUT_S = 120.0
NATS_USER = "sluice"  # the services' NATS user; its password is the internal token

Signals = list[tuple[signal.Signals, float]]


@contextmanager
def locked(layout: Layout, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """One `up`, `down` or watchdog check at a time per state folder, so none of them overwrites
    another's records in stack.json; FailedPrecondition when it is not free within `timeout_s`.
    """
    with layout.lock_file.open("w") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise FailedPrecondition(
                        f"another `sluice up` or `sluice down` holds {layout.root}"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log_header(log_file: Path, what: str) -> int:
    """Mark the start of a run in the part's log; returns the offset the run's output starts at."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    since = log_size(log_file)
    with log_file.open("a") as log:
        log.write(f"=== {what} at {datetime.now(UTC).isoformat()} ===\n")
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


def _settings(layout: Layout, stack: StackFile) -> Settings:
    """What every service is told: addresses from the recorded ports, the token, the log level."""
    address = {part: f"{LOOPBACK}:{stack.record(part).port}" for part in PARTS}
    token = layout.token_file.read_text().strip()
    return Settings(
        database_url=f"postgresql://postgres@{address['postgres']}/{DATABASE}",
        nats_url=f"nats://{address['nats']}",
        store_url=layout.objects_dir.resolve().as_uri(),
        staging_address=address["staging"],
        scheduler_address=address["scheduler"],
        api_keys_file=layout.api_keys_file,
        internal_token=token,
        log_level=stack.options.log_level,
        nats_user=NATS_USER,
        nats_password=token,
        nats_users_file=layout.nats_users_file,
        nats_pid_file=layout.nats_pid_file,
    )


def _prepare_nats(layout: Layout, port: int) -> Path:
    """nats/nats.conf for `port`, and a users file that lets the services in. A missing one, or
    one made for another token, is written with the services' account and an account for each
    workspace of the keys file, as the scheduler will write it at start (so that finds nothing
    to change); the scheduler adds the rest."""
    token = layout.token_file.read_text().strip()
    users = layout.nats_users_file
    if not admits(users, NATS_USER, token):
        bootstrap = sorted(set(read_keys_file(layout.api_keys_file).values()))
        service_hash = service_password_hash(token)
        text = render_users(
            [], workspaces=bootstrap, service_user=NATS_USER, service_password_hash=service_hash
        )
        write_users_file(users, text)
    return write_nats_config(layout.nats_dir, port, users, layout.nats_pid_file)


def _dashboard_env(stack: StackFile) -> dict[str, str]:
    """What the dashboard is told: where the services are; no token, no key."""
    return {
        "SLUICE_STAGING_ADDRESS": f"{LOOPBACK}:{stack.record('staging').port}",
        "SLUICE_SCHEDULER_ADDRESS": f"{LOOPBACK}:{stack.record('scheduler').port}",
    }


def service_launch(layout: Layout, stack: StackFile, name: str) -> tuple[list[str], dict[str, str], str]:
    """Service `name`'s command, environment, and a digest of both (less what is inherited)."""
    options = stack.options
    address = f"{LOOPBACK}:{stack.record(name).port}"
    cmd = service_command(name, address, options)
    if name == DASHBOARD:
        # Nothing of the caller's SLUICE_* (a key or token exported in the shell that ran `up`).
        settings_env = _dashboard_env(stack)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    else:
        settings_env, inherited = _settings(layout, stack).to_env(), dict(os.environ)
        # A laptop's webhook receivers are usually on localhost: the local stack lets webhooks
        # reach private addresses unless the environment of `up` says otherwise.
        inherited.setdefault(PRIVATE_ADDRESSES_ENV, "allow")
    env = {**inherited, **settings_env, "PYTHONUNBUFFERED": "1"}
    return cmd, env, _digest(cmd, settings_env)


def start_part(layout: Layout, stack: StackFile, name: str, *, by_watchdog: bool = False) -> int:
    """Start part `name` on its recorded port and record its pid; returns its log offset.

    The one place a part's command, environment and log file are chosen, for `up` and the
    watchdog alike. Started by `up`, the part's restart count goes back to 0.
    """
    record = stack.record(name)
    log_file = layout.log(name)
    doing = "sluice watchdog: restarting" if by_watchdog else "sluice up: starting"
    since = _log_header(log_file, f"{doing} {name}")
    try:
        if name == "nats":
            port = record.port or free_port()
            config = _prepare_nats(layout, port)
            nats = start_nats(
                layout.nats_dir, port=port, log_file=log_file, detached=True, config_file=config
            )
            record.pid, record.port, record.marker = nats.pid, nats.port, nats_config_marker(config)
        elif name == "postgres":
            pg = start_postgres(layout.postgres_dir, port=record.port, log_file=log_file, detached=True)
            record.pid, record.port = pg.pid, pg.port
            record.marker = postgres_marker(layout.postgres_dir)
        else:
            cmd, env, digest = service_launch(layout, stack, name)
            _, record.pid = spawn(cmd, log_file, env=env, cwd=layout.root, detached=True)
            record.env_digest, record.marker = digest, service_marker(name, f"{LOOPBACK}:{record.port}")
    except RuntimeError as error:
        raise Unavailable(str(error)) from error
    if not by_watchdog:
        record.restarts = 0
    stack.save(layout)
    return since


def _ensure_server(
    layout: Layout,
    stack: StackFile,
    name: str,
    ready: Callable[[int], bool],
    grace_s: float,
    signals: Signals,
    started: list[str],
) -> None:
    """Start NATS or Postgres unless the recorded one runs and is ready."""
    record = stack.record(name)
    if not _running_and_ready(record, lambda: ready(record.port), grace_s, signals):
        start_part(layout, stack, name)
        started.append(name)


def _retire_open_nats(layout: Layout, stack: StackFile) -> None:
    """Stop a NATS that an older Sluice started without the configuration file (and so without
    authorization); `up` starts it again with it, on the same port and store."""
    record = stack.record("nats")
    current = nats_config_marker(layout.nats_config_file)
    if is_running(record) and record.pid is not None and record.marker != current:
        stop_pid(record.pid, [(signal.SIGTERM, 10.0)])


def _ensure_database(layout: Layout, stack: StackFile) -> None:
    record = stack.record("postgres")
    assert record.pid is not None
    server = PostgresServer(None, record.pid, record.port, layout.postgres_dir / "data")
    try:
        ensure_database(server, DATABASE)
    except RuntimeError as error:
        raise Unavailable(str(error)) from error


def _start_service(layout: Layout, stack: StackFile, name: str) -> int | None:
    """Start service `name` unless the same one runs and serves; returns its log offset if started."""
    record = stack.record(name)
    address = f"{LOOPBACK}:{record.port}"
    _, _, digest = service_launch(layout, stack, name)
    if record.env_digest == digest and _running_and_ready(record, lambda: _serving(name, address), 5.0):
        return None
    if is_running(record) and record.pid is not None:
        stop_pid(record.pid, _TERM)
    return start_part(layout, stack, name)


def _ensure_watchdog(layout: Layout, stack: StackFile, started: list[str]) -> None:
    """Start the watchdog (sluice.stack.watchdog) unless it runs: never a second one."""
    record = stack.record(WATCHDOG)
    if is_running(record):
        return
    log_file = layout.log(WATCHDOG)
    _log_header(log_file, f"sluice up: starting {WATCHDOG}")
    try:
        _, record.pid = spawn(watchdog_command(layout.root), log_file, cwd=layout.root, detached=True)
    except RuntimeError as error:
        raise Unavailable(str(error)) from error
    record.marker = watchdog_marker(layout.root)
    stack.save(layout)
    started.append(WATCHDOG)


def _serving(name: str, address: str) -> bool:
    return http_healthy(address) if name == DASHBOARD else grpc_serving(address)


def _wait_service(layout: Layout, name: str, record: PartRecord, since: int) -> str | None:
    """None once service `name` serves; else why not, with the last lines of its log."""
    address = f"{LOOPBACK}:{record.port}"
    log_file = layout.log(name)
    deadline = time.monotonic() + SERVICE_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if _serving(name, address):
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


def _check_worker_options(
    workers_per_machine: int, machine_type: str, ort_threads: int | None, worker_batch_size: int | None
) -> None:
    if workers_per_machine < 1:
        raise InvalidArgument("--workers-per-machine must be at least 1")
    if machine_type not in MACHINE_TYPES:
        raise InvalidArgument(f"--machine-type must be one of {', '.join(MACHINE_TYPES)}")
    if ort_threads is not None and ort_threads < 1:
        raise InvalidArgument("--ort-threads must be at least 1")
    if worker_batch_size is not None and worker_batch_size < 1:
        raise InvalidArgument("--worker-batch-size must be at least 1")


def up(
    state_dir: Path,
    ports: dict[str, int] | None = None,
    workers_per_machine: int = 2,
    machine_type: str = "cpu",
    dashboard: bool = True,
    *,
    ort_threads: int | None = None,
    worker_batch_size: int | None = None,
) -> StackStatus:
    """Start every part of the stack in `state_dir` that is not running (the dashboard only when
    `dashboard` and installed; a running one is stopped otherwise); returns the status.

    The worker runs with `workers_per_machine` slots, `ort_threads` ONNX Runtime threads per
    session and `worker_batch_size` images per workflow run (None: the worker chooses); a
    running worker started with other options is restarted with these.
    """
    requested = {part: port for part, port in (ports or {}).items() if port}
    unknown = sorted(set(requested) - set(PARTS))
    if unknown:
        raise InvalidArgument(f"unknown parts {', '.join(unknown)}; known: {', '.join(PARTS)}")
    if any(not 0 < port < 65536 for port in requested.values()):
        raise InvalidArgument("ports must be between 1 and 65535")
    _check_worker_options(workers_per_machine, machine_type, ort_threads, worker_batch_size)
    board_missing = dashboard and not dashboard_installed()
    dashboard = dashboard and not board_missing
    layout = prepare_state_dir(state_dir)
    started: list[str] = []
    with locked(layout):
        stack = StackFile.load(layout)
        for part in PARTS:
            stack.record(part)
        running = {part for part in PARTS if is_running(stack.parts.get(part))}
        chosen = _choose_ports(stack, requested, running)
        for part in PARTS:
            stack.record(part).port = chosen[part]
        log_level = os.environ.get("SLUICE_LOG_LEVEL", "INFO")
        stack.options = UpOptions(
            machine_type, workers_per_machine, log_level, dashboard, ort_threads, worker_batch_size
        )
        api_key, _ = ensure_secrets(layout)
        _retire_open_nats(layout, stack)
        _ensure_server(layout, stack, "nats", nats_ready, 5.0, _TERM, started)
        _ensure_server(layout, stack, "postgres", postgres_ready, 10.0, _FAST_SHUTDOWN, started)
        _ensure_database(layout, stack)
        staging, scheduler = (f"{LOOPBACK}:{chosen[name]}" for name in ("staging", "scheduler"))
        write_credentials(layout, api_key, staging, scheduler)
        waiting: dict[str, int] = {}
        for name in SERVICES:
            since = _start_service(layout, stack, name)
            if since is not None:
                waiting[name] = since
        failures = [
            failure
            for name, since in waiting.items()
            if (failure := _wait_service(layout, name, stack.record(name), since))
        ]
        if not failures:
            failures = _ensure_dashboard(layout, stack, dashboard, waiting)
        started.extend(waiting)
        if failures:
            raise Unavailable("\n".join(failures) + "\n(stop the rest with `sluice down`)")
        stack.save(layout)
        _ensure_watchdog(layout, stack, started)
    return replace(status(layout.root, started), dashboard_missing=board_missing)


def _ensure_dashboard(layout: Layout, stack: StackFile, wanted: bool, started: dict[str, int]) -> list[str]:
    """Start the dashboard once the services serve (or stop it when not wanted); why it failed."""
    if not wanted:
        _stop_part(stack.parts.get(DASHBOARD), _TERM)
        return []
    since = _start_service(layout, stack, DASHBOARD)
    if since is None:
        return []
    started[DASHBOARD] = since
    failure = _wait_service(layout, DASHBOARD, stack.record(DASHBOARD), since)
    return [failure] if failure else []


def _stop_part(record: PartRecord | None, signals: Signals) -> None:
    if record is None:
        return
    if is_running(record) and record.pid is not None:
        stop_pid(record.pid, signals)
    record.pid = None


def _stop_parts(records: list[PartRecord | None], signals: Signals) -> None:
    """Stop these parts together: each waits for its own exit, so the slowest sets the time."""
    with ThreadPoolExecutor(max_workers=max(1, len(records))) as pool:
        list(pool.map(lambda record: _stop_part(record, signals), records))


def down(state_dir: Path) -> StackStatus:
    """Stop the watchdog, then the dashboard and the services together, NATS, then Postgres; state
    stays. The services stop together (one at a time cost a few seconds per `down`): a worker
    finishing the task in hand reports it to NATS, which is stopped only after them."""
    layout = Layout(state_dir.absolute())
    if not layout.stack_file.exists():
        return status(layout.root)
    with locked(layout):
        stack = StackFile.load(layout)
        _stop_part(stack.parts.get(WATCHDOG), [(signal.SIGTERM, 5.0)])  # first: it restarts parts
        _stop_parts([stack.parts.get(name) for name in (DASHBOARD, *SERVICE_STOP_ORDER)], _TERM)
        _stop_part(stack.parts.get("nats"), [(signal.SIGTERM, 10.0)])
        _stop_part(stack.parts.get("postgres"), _FAST_SHUTDOWN)
        stack.save(layout)
    return status(layout.root)
