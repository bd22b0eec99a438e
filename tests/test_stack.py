"""The local stack with real processes: nats-server, postgres, and `sluice up/status/down`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest

from sluice.auth import hash_key
from sluice.cli.main import main as sluice_main
from sluice.cli.stack import register
from sluice.errors import FailedPrecondition, InvalidArgument
from sluice.stack import supervisor, watchdog
from sluice.stack.health import grpc_serving, http_healthy
from sluice.stack.nats_process import nats_ready, start_nats
from sluice.stack.pg_install import UNPRIVILEGED_ID
from sluice.stack.ports import free_port, port_is_free, tcp_accepts
from sluice.stack.postgres_process import create_database, postgres_ready, start_postgres
from sluice.stack.processes import cmdline, pid_alive
from sluice.stack.services import (
    DASHBOARD,
    SERVICES,
    SPECS,
    WATCHDOG,
    dashboard_installed,
    watchdog_marker,
)
from sluice.stack.state import Layout, StackFile, load_credentials

ROOT = Path(__file__).resolve().parents[1]
AS_ROOT = os.geteuid() == 0
EXPORTED_KEY = "sk-exported-in-the-shell-that-ran-up"
# The worker options of the module's stack: one slot, one ONNX Runtime thread, 4 images a run.
WORKER: dict[str, Any] = {"workers_per_machine": 1, "ort_threads": 1, "worker_batch_size": 4}
WORKER_FLAGS = ("--workers-per-machine 1", "--ort-threads 1", "--batch-size 4")


@pytest.fixture
def folder() -> Iterator[Path]:
    """A temporary folder under /tmp that the unprivileged Postgres user can reach."""
    path = Path(tempfile.mkdtemp(prefix="sluice-stack-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_free_port_is_free_until_something_listens() -> None:
    port = free_port()
    assert port_is_free(port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert not port_is_free(port)
        assert tcp_accepts(port)
    assert not port_is_free(0)


async def test_nats_picks_a_free_port_and_serves_jetstream(folder: Path) -> None:
    server = start_nats(folder)
    try:
        assert server.port > 0
        assert server.url == f"nats://127.0.0.1:{server.port}"
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="STACK_TEST", subjects=["stack.test"])
        await js.publish("stack.test", b"hello")
        sub = await js.pull_subscribe("stack.test", durable="reader")
        [message] = await sub.fetch(1, timeout=5)
        await message.ack()
        assert message.data == b"hello"
        await nc.close()
        assert (folder / "js").is_dir()
    finally:
        server.stop()
    assert not pid_alive(server.pid)
    assert not tcp_accepts(server.port)


def test_nats_on_a_requested_port(folder: Path) -> None:
    port = free_port()
    server = start_nats(folder, port=port)
    try:
        assert server.port == port
        assert nats_ready(port)
    finally:
        server.stop()


def test_nats_on_a_busy_port_fails_with_its_log(folder: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        with pytest.raises(RuntimeError, match="nats-server did not start") as failure:
            start_nats(folder, port=busy)
    assert "address already in use" in str(failure.value)


def test_detached_nats_is_not_our_child_and_stops_by_pid(folder: Path) -> None:
    server = start_nats(folder, detached=True)
    try:
        assert server.process is None
        parent = int(Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert parent != os.getpid()
        assert nats_ready(server.port)
    finally:
        server.stop()
    assert not pid_alive(server.pid)


async def test_postgres_keeps_rows_across_a_restart(folder: Path) -> None:
    server = start_postgres(folder)
    try:
        data = folder / "data"
        if AS_ROOT:
            assert data.stat().st_uid == UNPRIVILEGED_ID
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        url = create_database(server, "keeper")
        assert url == f"postgresql://postgres@127.0.0.1:{server.port}/keeper"
        conn = await asyncpg.connect(url)
        await conn.execute("CREATE TABLE kept (id int PRIMARY KEY, name text)")
        await conn.executemany("INSERT INTO kept VALUES ($1, $2)", [(1, "one"), (2, "two")])
        await conn.close()
    finally:
        server.stop()
    assert not pid_alive(server.pid)

    again = start_postgres(folder, port=server.port)
    try:
        assert again.port == server.port
        assert create_database(again, "keeper") == url
        conn = await asyncpg.connect(url)
        rows = await conn.fetch("SELECT id, name FROM kept ORDER BY id")
        await conn.close()
        assert [tuple(row) for row in rows] == [(1, "one"), (2, "two")]
    finally:
        again.stop()


async def test_postgres_databases_are_separate(folder: Path) -> None:
    server = start_postgres(folder, fast_test_settings=True)
    try:
        assert postgres_ready(server.port)
        first, second = create_database(server, "first"), create_database(server, "second")
        conn = await asyncpg.connect(first)
        await conn.execute("CREATE TABLE only_here (x int)")
        await conn.close()
        conn = await asyncpg.connect(second)
        found = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'")
        assert await conn.fetchval("SHOW fsync") == "off"
        await conn.close()
        assert found == 0
        with pytest.raises(ValueError):
            create_database(server, "bad-name; DROP")
    finally:
        server.stop()


def test_postgres_on_a_busy_port_fails_with_its_log(folder: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(RuntimeError, match="postgres did not start") as failure:
            start_postgres(folder, port=listener.getsockname()[1], fast_test_settings=True)
    assert "could not" in str(failure.value).lower()


@pytest.mark.skipif(not AS_ROOT, reason="only root runs Postgres as another user")
def test_state_folder_unreachable_by_the_postgres_user_is_refused(folder: Path) -> None:
    private = folder / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(FailedPrecondition, match="choose a state folder elsewhere"):
        supervisor.up(private / "state")


def test_up_refuses_bad_arguments(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InvalidArgument, match="unknown parts"):
        supervisor.up(folder / "state", ports={"mystery": 1234})
    with pytest.raises(InvalidArgument):
        supervisor.up(folder / "state", machine_type="tpu")
    with pytest.raises(InvalidArgument, match="--ort-threads must be at least 1"):
        supervisor.up(folder / "state", ort_threads=0)
    for flag in ("--ort-threads", "--worker-batch-size", "--workers-per-machine"):
        capsys.readouterr()
        assert sluice_main(["up", "--state-dir", str(folder / "state"), flag, "0"]) == 1
        printed = capsys.readouterr()
        assert printed.err == f"error: {flag} must be at least 1\n" and printed.out == ""
    assert not (folder / "state").exists()  # refused before anything was made


def test_up_leaves_out_a_dashboard_that_is_not_installed() -> None:
    """What `up` decides from: streamlit and the dashboard's package found without importing them
    (this venv has both; a module no Python has stands for a missing streamlit)."""
    assert dashboard_installed()
    assert not dashboard_installed(("streamlit", "sluice_dashboard_that_is_not_there"))


def test_status_and_down_of_a_stack_never_started(folder: Path) -> None:
    result = supervisor.status(folder / "nothing")
    assert [part.name for part in result.parts] == [
        "nats", "postgres", "staging", "scheduler", "worker", "exporter", "dashboard",
    ]  # fmt: skip
    assert not any(part.up for part in result.parts)
    assert result.watchdog.state == "down" and not result.up
    assert not supervisor.down(folder / "nothing").up
    with pytest.raises(FailedPrecondition, match="sluice up"):
        load_credentials(folder / "nothing")


def test_cli_registers_up_status_down(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="sluice")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["up", "--state-dir", str(folder), "--nats-port", "4333", "--workers-per-machine", "3"]
    )
    assert (args.nats_port, args.postgres_port, args.workers_per_machine) == (4333, None, 3)
    assert (args.ort_threads, args.worker_batch_size) == (None, None)
    assert args.machine_type == "cpu" and callable(args.func)
    args = parser.parse_args(["up", "--ort-threads", "2", "--worker-batch-size", "16"])
    assert (args.ort_threads, args.worker_batch_size) == (2, 16)
    args = parser.parse_args(["status", "--state-dir", str(folder / "empty")])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "PART" in printed and "scheduler" in printed and "down" in printed
    assert "RESTARTS" in printed and "watchdog" in printed
    assert "worker:" not in printed  # no options to show for a stack never started
    document = _status_json(folder / "empty", capsys)
    assert [part["name"] for part in document["parts"]][-2:] == ["dashboard", "watchdog"]
    assert {part["state"] for part in document["parts"]} == {"down"}
    assert document["parts"][0] == {
        "name": "nats", "state": "down", "address": None, "pid": None, "restarts": 0,
    }  # fmt: skip
    assert document["options"]["ort_threads"] is None
    args = parser.parse_args(["down", "--state-dir", str(folder / "empty")])
    assert args.func(args) == 0


def _services_missing() -> list[str]:
    return [
        name
        for name in SERVICES
        if not (ROOT / "services" / name / SPECS[name].module / "__main__.py").exists()
    ]


def _kill(pid: int | None) -> None:
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    while pid_alive(pid):
        time.sleep(0.02)


def _processes_with(markers: list[str]) -> list[int]:
    """Live pids whose command line contains one of `markers`."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and pid_alive(int(entry.name))
        and any(marker in cmdline(int(entry.name)) for marker in markers)
    ]


def _status_table(state: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, str]]:
    """`sluice status` as {part: {column: value}} (the lines after the table say "worker: ..."
    and "logs: ...")."""
    parser = argparse.ArgumentParser(prog="sluice")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["status", "--state-dir", str(state)])
    capsys.readouterr()
    assert args.func(args) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    header, *rows = [line for line in lines if not line[0].endswith(":")]
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


def _status_json(state: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """`sluice status --output json`, parsed."""
    capsys.readouterr()
    assert sluice_main(["status", "--state-dir", str(state), "--output", "json"]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def test_backoff_doubles_to_a_cap() -> None:
    assert [watchdog.backoff_s(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert watchdog.backoff_s(10_000) == watchdog.MAX_DELAY_S


def test_watchdog_backs_off_and_resets(
    folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`check` with a fake start: a part found gone waits 0.5 s, then 1, 2 ...; 30 s up resets."""
    layout = Layout(folder)
    stack = StackFile()
    stack.record(WATCHDOG).pid = os.getpid()
    stack.record("worker").pid, stack.record("worker").marker = os.getpid(), "not this process"
    stack.save(layout)
    fake = {"starts": 0, "comes_up": False}

    def fake_start(layout: Layout, stack: StackFile, name: str, *, by_watchdog: bool = False) -> int:
        assert name == "worker" and by_watchdog
        fake["starts"] += 1
        if fake["comes_up"]:
            stack.record(name).marker = ""  # found in every command line: running
        return 0

    watches: dict[str, watchdog.Watch] = {}

    def restarts_at(times: list[float]) -> list[float]:
        at = []
        for now in times:
            before = fake["starts"]
            assert watchdog.check(layout, watches, now)
            if fake["starts"] > before:
                at.append(now)
        return at

    monkeypatch.setattr(watchdog, "start_part", fake_start)
    caplog.set_level("INFO", logger="sluice.watchdog")
    # found gone at 100: restarted 0.5 s later, then 1 s and 2 s after it is found gone again
    assert restarts_at([100 + i / 4 for i in range(17)]) == [100.5, 101.75, 104.0]
    assert StackFile.load(layout).parts["worker"].restarts == 3
    assert "worker exited; restarting it (restart 1, after 0.5 s)" in caplog.text
    assert "worker exited; restarting it (restart 3, after 2.0 s)" in caplog.text

    fake["comes_up"] = True
    assert restarts_at([104.25, 108.25, 108.5, 138.5]) == [108.25]  # after 4 s; then up 30 s
    assert watches["worker"].streak == 0
    stack = StackFile.load(layout)
    stack.record("worker").marker = "gone again"
    stack.save(layout)
    assert restarts_at([139.0, 139.25, 139.5]) == [139.5]  # 0.5 s again

    stack = StackFile.load(layout)
    stack.record(WATCHDOG).pid = os.getpid() + 1
    stack.save(layout)
    assert not watchdog.check(layout, watches, 150.0)


needs_services = pytest.mark.skipif(
    bool(_services_missing()), reason="the service entry points are not there yet"
)


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Path, supervisor.StackStatus]]:
    """One stack for the tests below, which run in order: (state folder, what `up` returned)."""
    folder = Path(tempfile.mkdtemp(prefix="sluice-stack-", dir="/tmp"))
    folder.chmod(0o755)
    state = folder / "state"
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SLUICE_API_KEY", EXPORTED_KEY)  # as a user's shell may export it
            first = supervisor.up(state, **WORKER)
        yield state, first
    finally:
        supervisor.down(state)
        print(f"--- watchdog.log\n{(state / 'logs' / 'watchdog.log').read_text()[-3000:]}")
        shutil.rmtree(folder, ignore_errors=True)


@needs_services
def test_up_starts_every_part_and_the_watchdog(stack: tuple[Path, supervisor.StackStatus]) -> None:
    state, first = stack
    assert first.up, first
    assert {part.name for part in first.parts if part.started} == {
        "nats", "postgres", *SERVICES, DASHBOARD,
    }  # fmt: skip
    assert first.watchdog.started and first.watchdog.pid
    assert not any(part.restarts for part in first.parts)
    for name in SERVICES:
        assert grpc_serving(first.part(name).address)

    credentials = load_credentials(state)
    assert credentials["workspace"] == "default"
    assert credentials["staging_address"] == first.part("staging").address
    assert credentials["scheduler_address"] == first.part("scheduler").address
    assert stat.S_IMODE((state / "credentials.json").stat().st_mode) == 0o600
    keys = json.loads((state / "api_keys.json").read_text())
    assert keys[hash_key(credentials["api_key"])] == "default"
    assert (state / "objects").is_dir()
    token = (state / "internal_token").read_text().strip()
    assert token not in (state / "stack.json").read_text()
    # The dashboard serves on loopback and acts only with the keys browsers sign in with: its
    # environment holds the services' addresses, not the internal token nor the stack's key.
    board = first.part(DASHBOARD)
    assert board.address.startswith("127.0.0.1:") and http_healthy(board.address)
    environ = Path(f"/proc/{board.pid}/environ").read_bytes().decode(errors="replace")
    assert f"SLUICE_SCHEDULER_ADDRESS={credentials['scheduler_address']}" in environ
    assert token not in environ and credentials["api_key"] not in environ
    assert EXPORTED_KEY not in environ and "SLUICE_API_KEY" not in environ
    # The worker runs as `up` was asked: one slot, one ONNX Runtime thread, 4 images a run.
    worker_pid = first.part("worker").pid
    assert worker_pid is not None
    worker_cmdline = cmdline(worker_pid)
    assert all(flag in worker_cmdline for flag in WORKER_FLAGS), worker_cmdline
    assert "ort threads 1 per session (--ort-threads)" in (state / "logs" / "worker.log").read_text()


@needs_services
def test_up_again_starts_nothing_not_even_a_second_watchdog(
    stack: tuple[Path, supervisor.StackStatus],
) -> None:
    state, first = stack
    second = supervisor.up(state, **WORKER)
    assert second.up and not any(part.started for part in second.parts)
    assert not second.watchdog.started
    assert [p.pid for p in second.parts] == [p.pid for p in first.parts]
    assert second.watchdog.pid == first.watchdog.pid
    assert _processes_with([watchdog_marker(state)]) == [first.watchdog.pid]


@needs_services
def test_watchdog_restarts_a_killed_worker_and_scheduler(
    stack: tuple[Path, supervisor.StackStatus], capsys: pytest.CaptureFixture[str]
) -> None:
    state, first = stack
    killed = {name: first.part(name).pid for name in ("worker", "scheduler")}
    for pid in killed.values():
        _kill(pid)
    gone = time.monotonic()
    back: dict[str, float] = {}
    while len(back) < len(killed) and time.monotonic() - gone < 10.0:
        records = StackFile.load(Layout(state)).parts
        for name, pid in killed.items():
            record = records[name]
            serving = record.pid != pid and pid_alive(record.pid)
            if name not in back and serving and grpc_serving(first.part(name).address, 0.5):
                back[name] = time.monotonic() - gone
        time.sleep(0.05)
    with capsys.disabled():
        print(f"\nkill -9 to SERVING again: {', '.join(f'{n} {s:.1f} s' for n, s in back.items())}")
    assert set(back) == set(killed), f"not serving again within 10 s: {set(killed) - set(back)}"

    table = _status_table(state, capsys)
    assert {name: row["RESTARTS"] for name, row in table.items()} == {
        "nats": "0", "postgres": "0", "staging": "0", "scheduler": "1", "worker": "1",
        "exporter": "0", "dashboard": "0", "watchdog": "-",
    }  # fmt: skip
    assert table[DASHBOARD]["ADDRESS"] == f"http://{first.part(DASHBOARD).address}"
    assert {row["STATE"] for row in table.values()} == {"up"}
    for name, pid in killed.items():
        assert table[name]["PID"] != str(pid)
    # The watchdog started the worker with the options `up` was given.
    restarted = StackFile.load(Layout(state)).parts["worker"].pid
    assert restarted is not None
    assert all(flag in cmdline(restarted) for flag in WORKER_FLAGS), cmdline(restarted)
    document = _status_json(state, capsys)
    worker = next(part for part in document["parts"] if part["name"] == "worker")
    assert (worker["state"], worker["pid"], worker["restarts"]) == ("up", restarted, 1)
    assert worker["address"] == first.part("worker").address
    assert {k: document["options"][k] for k in WORKER} == WORKER
    log = (state / "logs" / "watchdog.log").read_text()
    for name in killed:
        assert f"{name} exited; restarting it (restart 1, after 0.5 s)" in log
    assert str(load_credentials(state)["api_key"]) not in log
    assert (state / "internal_token").read_text().strip() not in log


@needs_services
def test_watchdog_restarts_the_dashboard(stack: tuple[Path, supervisor.StackStatus]) -> None:
    state, first = stack
    board = supervisor.status(state).part(DASHBOARD)
    _kill(board.pid)
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        now = supervisor.status(state).part(DASHBOARD)
        if now.up and now.pid != board.pid:
            break
        time.sleep(0.2)
    assert (now.state, now.restarts, now.address) == ("up", 1, first.part(DASHBOARD).address)


@needs_services
def test_watchdog_restarts_nats_and_postgres(stack: tuple[Path, supervisor.StackStatus]) -> None:
    state, first = stack
    killed = {name: first.part(name).pid for name in ("nats", "postgres")}
    for pid in killed.values():
        _kill(pid)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        now = supervisor.status(state)
        if all(now.part(name).up and now.part(name).pid != pid for name, pid in killed.items()):
            break
        time.sleep(0.2)
    assert {name: (now.part(name).state, now.part(name).restarts) for name in killed} == {
        "nats": ("up", 1), "postgres": ("up", 1),
    }  # fmt: skip
    assert [part.address for part in now.parts] == [part.address for part in first.parts]


@needs_services
def test_up_heals_a_part_when_the_watchdog_is_gone(stack: tuple[Path, supervisor.StackStatus]) -> None:
    state, _ = stack
    before = supervisor.status(state)
    _kill(before.watchdog.pid)
    _kill(before.part("worker").pid)
    healed = supervisor.up(state, **WORKER)
    assert healed.up
    assert [part.name for part in healed.parts if part.started] == ["worker"]
    assert healed.watchdog.started and healed.watchdog.pid != before.watchdog.pid
    assert healed.part("worker").restarts == 0  # counted since `up` started it


@needs_services
def test_down_stops_everything_and_nothing_comes_back(
    stack: tuple[Path, supervisor.StackStatus],
) -> None:
    state, _ = stack
    running = supervisor.status(state)
    markers = [record.marker for record in StackFile.load(Layout(state)).parts.values()]
    stopped = supervisor.down(state)
    assert not stopped.up and stopped.watchdog.state == "down"
    assert not any(part.up or part.pid for part in (*stopped.parts, stopped.watchdog))
    time.sleep(3.0)
    assert not any(pid_alive(part.pid) for part in (*running.parts, running.watchdog))
    assert _processes_with(markers) == []
    assert supervisor.status(state) == stopped


@needs_services
def test_up_after_down_keeps_ports_and_key(stack: tuple[Path, supervisor.StackStatus]) -> None:
    state, _ = stack
    remembered = StackFile.load(Layout(state)).parts
    again = supervisor.up(state, **WORKER)
    assert again.up and again.watchdog.started
    assert [part.address for part in again.parts] == [
        f"127.0.0.1:{remembered[part.name].port}" for part in again.parts
    ]
    keys = json.loads((state / "api_keys.json").read_text())
    assert list(keys) == [hash_key(load_credentials(state)["api_key"])]
    assert not any(part.restarts for part in again.parts)


@needs_services
def test_up_without_the_dashboard_stops_it_and_status_says_off(
    stack: tuple[Path, supervisor.StackStatus], capsys: pytest.CaptureFixture[str]
) -> None:
    state, _ = stack
    board = supervisor.status(state).part(DASHBOARD)
    without = supervisor.up(state, **WORKER, dashboard=False)
    assert without.up and not without.part(DASHBOARD).pid and not pid_alive(board.pid)
    assert _status_table(state, capsys)[DASHBOARD]["STATE"] == "off"
    time.sleep(1.5)  # the watchdog does not bring it back
    assert not supervisor.status(state).part(DASHBOARD).pid
    again = supervisor.up(state, **WORKER)
    assert again.up and again.part(DASHBOARD).started and http_healthy(again.part(DASHBOARD).address)
