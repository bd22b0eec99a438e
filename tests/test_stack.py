"""The local stack with real processes: nats-server, postgres, and `sluice up/status/down`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import pytest

from sluice.auth import hash_key
from sluice.cli.stack import register
from sluice.errors import FailedPrecondition, InvalidArgument
from sluice.stack import supervisor
from sluice.stack.health import grpc_serving
from sluice.stack.nats_process import nats_ready, start_nats
from sluice.stack.pg_install import UNPRIVILEGED_ID
from sluice.stack.ports import free_port, port_is_free, tcp_accepts
from sluice.stack.postgres_process import create_database, postgres_ready, start_postgres
from sluice.stack.processes import pid_alive
from sluice.stack.services import SERVICES, SPECS
from sluice.stack.state import load_credentials

ROOT = Path(__file__).resolve().parents[1]
AS_ROOT = os.geteuid() == 0


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


def test_up_refuses_bad_arguments(folder: Path) -> None:
    with pytest.raises(InvalidArgument, match="unknown parts"):
        supervisor.up(folder / "state", ports={"mystery": 1234})
    with pytest.raises(InvalidArgument):
        supervisor.up(folder / "state", machine_type="tpu")


def test_status_and_down_of_a_stack_never_started(folder: Path) -> None:
    result = supervisor.status(folder / "nothing")
    assert [part.name for part in result.parts] == [
        "nats", "postgres", "staging", "scheduler", "worker", "exporter",
    ]  # fmt: skip
    assert not any(part.up for part in result.parts)
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
    assert args.machine_type == "cpu" and callable(args.func)
    args = parser.parse_args(["status", "--state-dir", str(folder / "empty")])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "PART" in printed and "scheduler" in printed and "down" in printed
    args = parser.parse_args(["down", "--state-dir", str(folder / "empty")])
    assert args.func(args) == 0


def _services_missing() -> list[str]:
    return [
        name
        for name in SERVICES
        if not (ROOT / "services" / name / SPECS[name].module / "__main__.py").exists()
    ]


@pytest.mark.skipif(bool(_services_missing()), reason="the service entry points are not there yet")
def test_up_status_down_up_again(folder: Path) -> None:
    state = folder / "state"
    try:
        first = supervisor.up(state, workers_per_machine=1)
        assert first.up, first
        assert {part.name for part in first.parts if part.started} == {
            "nats", "postgres", *SERVICES,
        }  # fmt: skip
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

        second = supervisor.up(state, workers_per_machine=1)
        assert second.up and not any(part.started for part in second.parts)
        assert [p.pid for p in second.parts] == [p.pid for p in first.parts]

        worker_pid = first.part("worker").pid
        assert worker_pid is not None
        os.kill(worker_pid, 9)
        while pid_alive(worker_pid):
            time.sleep(0.05)
        healed = supervisor.up(state, workers_per_machine=1)
        assert healed.up
        assert [part.name for part in healed.parts if part.started] == ["worker"]

        stopped = supervisor.down(state)
        assert not any(part.up or part.pid for part in stopped.parts)
        assert not any(pid_alive(part.pid) for part in healed.parts)
        assert supervisor.status(state) == stopped

        again = supervisor.up(state, workers_per_machine=1)
        assert again.up
        assert [part.address for part in again.parts] == [part.address for part in healed.parts]
        assert load_credentials(state)["api_key"] == credentials["api_key"]
    finally:
        supervisor.down(state)
