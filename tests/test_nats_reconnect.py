"""A NATS restart, seen by a client from `sluice.messaging.connect`: two short log lines, no tracebacks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sluice.messaging import connect
from sluice.stack.nats_process import start_nats


async def _until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_nats_restart_logs_one_warning_each_way(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = start_nats(tmp_path / "nats")
    nc = await connect(server.url, "sluice-test")
    try:
        server.stop()
        await _until(lambda: nc.is_reconnecting, 10)
        await asyncio.sleep(0.5)  # a failed attempt or two while the server is down
        server = start_nats(tmp_path / "nats", port=server.port)
        await _until(lambda: nc.is_connected, 15)
        reply = await nc.subscribe("sluice.test.after")
        await nc.publish("sluice.test.after", b"still works")
        assert (await reply.next_msg(timeout=5)).data == b"still works"
    finally:
        await nc.close()
        server.stop()

    assert [r for r in caplog.records if r.exc_info] == []
    noisy = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [
        ("WARNING", f"lost the NATS connection to {server.url} (sluice-test); reconnecting"),
        ("WARNING", f"reconnected to NATS at {server.url} (sluice-test)"),
    ]
