"""The four service processes of the local stack, the dashboard, the watchdog, and how each is
started."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

INFRASTRUCTURE = ("nats", "postgres")
SERVICES = ("staging", "scheduler", "worker", "exporter")
# The Streamlit dashboard: a client of staging and the scheduler, started after them (unless
# `up --no-dashboard`), stopped first.
DASHBOARD = "dashboard"
PARTS = (*INFRASTRUCTURE, *SERVICES, DASHBOARD)
SERVICE_STOP_ORDER = ("worker", "exporter", "scheduler", "staging")
WATCHDOG = "watchdog"


@dataclass(frozen=True)
class ServiceSpec:
    """A service: its module (run with `python -m`) and the flag that takes its address."""

    name: str
    module: str
    address_flag: str


SPECS = {
    "staging": ServiceSpec("staging", "sluice_staging", "--address"),
    "scheduler": ServiceSpec("scheduler", "sluice_scheduler", "--address"),
    "worker": ServiceSpec("worker", "sluice_worker", "--health-address"),
    "exporter": ServiceSpec("exporter", "sluice_exporter", "--health-address"),
    DASHBOARD: ServiceSpec(DASHBOARD, "sluice_dashboard", "--address"),
}


def service_marker(name: str, address: str) -> str:
    """A string found in the command line of service `name` listening on `address`."""
    spec = SPECS[name]
    return f"-m {spec.module} {spec.address_flag} {address}"


def service_command(name: str, address: str, machine_type: str, workers_per_machine: int) -> list[str]:
    """The command that starts service `name` listening on `address`."""
    spec = SPECS[name]
    cmd = [sys.executable, "-m", spec.module, spec.address_flag, address]
    if name == "worker":
        cmd += [
            "--machine-type", machine_type,
            "--workers-per-machine", str(workers_per_machine),
        ]  # fmt: skip
    return cmd


def watchdog_command(state_dir: Path) -> list[str]:
    """The command that starts the watchdog of the stack in `state_dir`."""
    return [sys.executable, "-m", "sluice.stack.watchdog", "--state-dir", str(state_dir)]


def watchdog_marker(state_dir: Path) -> str:
    """A string found in the command line of the watchdog of the stack in `state_dir`."""
    return f"-m sluice.stack.watchdog --state-dir {state_dir}"
