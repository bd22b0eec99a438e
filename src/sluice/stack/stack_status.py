"""What runs in a local stack: each part's pid, address and health."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from sluice.stack.health import part_ready
from sluice.stack.ports import LOOPBACK
from sluice.stack.processes import is_our_process
from sluice.stack.services import DASHBOARD, PARTS, WATCHDOG
from sluice.stack.state import Layout, PartRecord, StackFile, UpOptions


@dataclass(frozen=True)
class PartStatus:
    """One part: state is "up" (alive and ready), "unhealthy" (alive, not ready) or "down"."""

    name: str
    state: str
    pid: int | None
    address: str
    log_file: Path
    started: bool = False
    restarts: int = 0

    @property
    def up(self) -> bool:
        return self.state == "up"


@dataclass(frozen=True)
class StackStatus:
    """Every part of the stack in start order, and the watchdog that restarts them."""

    state_dir: Path
    parts: tuple[PartStatus, ...]
    watchdog: PartStatus
    dashboard_enabled: bool = True
    dashboard_missing: bool = False
    """`up` was asked for the dashboard but this Python lacks it (the `[dashboard]` extra)."""
    options: UpOptions = field(default_factory=UpOptions)
    """What `up` was asked for (the worker's slots, threads and batch size among them)."""

    @property
    def up(self) -> bool:
        return self.watchdog.up and all(
            part.up for part in self.parts if part.name != DASHBOARD or self.dashboard_enabled
        )

    @property
    def logs_dir(self) -> Path:
        return Layout(self.state_dir).logs_dir

    @property
    def credentials_file(self) -> Path:
        return Layout(self.state_dir).credentials_file

    def part(self, name: str) -> PartStatus:
        return next(part for part in self.parts if part.name == name)


def is_running(record: PartRecord | None) -> bool:
    """Whether the process a record names is alive and still the one we started."""
    return record is not None and is_our_process(record.pid, record.marker)


def address_of(record: PartRecord | None) -> str:
    return f"{LOOPBACK}:{record.port}" if record and record.port > 0 else ""


def status(state_dir: Path, started: Collection[str] = ()) -> StackStatus:
    """Each part of the stack in `state_dir` and the watchdog; `started` names those just started."""
    layout = Layout(state_dir.absolute())
    stack = StackFile.load(layout)
    parts = []
    for name in PARTS:
        record = stack.parts.get(name)
        alive = is_running(record)
        state = "down"
        if alive and record is not None:
            state = "up" if part_ready(name, record.port) else "unhealthy"
        parts.append(
            PartStatus(
                name=name,
                state=state,
                pid=record.pid if alive and record else None,
                address=address_of(record),
                log_file=layout.log(name),
                started=name in started,
                restarts=record.restarts if record else 0,
            )
        )
    record = stack.parts.get(WATCHDOG)
    alive = is_running(record)
    watchdog = PartStatus(
        name=WATCHDOG,
        state="up" if alive else "down",
        pid=record.pid if alive and record else None,
        address="",
        log_file=layout.log(WATCHDOG),
        started=WATCHDOG in started,
    )
    return StackStatus(layout.root, tuple(parts), watchdog, stack.options.dashboard, options=stack.options)
