"""The four service processes of the local stack, the dashboard, the watchdog, and how each is
started."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from sluice.stack.state import UpOptions

INFRASTRUCTURE = ("nats", "postgres")
SERVICES = ("staging", "scheduler", "worker", "exporter")
# The Streamlit dashboard: a client of staging and the scheduler, started after them (unless
# `up --no-dashboard`), stopped with the services.
DASHBOARD = "dashboard"
PARTS = (*INFRASTRUCTURE, *SERVICES, DASHBOARD)
SERVICE_STOP_ORDER = ("worker", "exporter", "scheduler", "staging")  # `down` stops them together
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


def service_command(name: str, address: str, options: UpOptions) -> list[str]:
    """The command that starts service `name` listening on `address`, as `up` was asked."""
    spec = SPECS[name]
    cmd = [sys.executable, "-m", spec.module, spec.address_flag, address]
    if name == "worker":
        cmd += [
            "--machine-type", options.machine_type,
            "--workers-per-machine", str(options.workers_per_machine),
        ]  # fmt: skip
        if options.ort_threads is not None:
            cmd += ["--ort-threads", str(options.ort_threads)]
        if options.worker_batch_size is not None:
            cmd += ["--batch-size", str(options.worker_batch_size)]
    return cmd


DASHBOARD_NOT_INSTALLED = "dashboard: not installed (pip install 'sluice[dashboard]')"
DASHBOARD_MODULES = ("streamlit", "sluice_dashboard")


def dashboard_installed(modules: tuple[str, ...] = DASHBOARD_MODULES) -> bool:
    """Whether this Python can run the dashboard: Streamlit (the `[dashboard]` extra) and the
    dashboard's package are importable. Looked up without importing either, so `up` stays fast."""
    return all(importlib.util.find_spec(module) is not None for module in modules)


def watchdog_command(state_dir: Path) -> list[str]:
    """The command that starts the watchdog of the stack in `state_dir`."""
    return [sys.executable, "-m", "sluice.stack.watchdog", "--state-dir", str(state_dir)]


def watchdog_marker(state_dir: Path) -> str:
    """A string found in the command line of the watchdog of the stack in `state_dir`."""
    return f"-m sluice.stack.watchdog --state-dir {state_dir}"
