"""Running a service process: logging to stderr, SIGTERM/SIGINT become a stop event, then drain;
and how many CPUs the process may use (its affinity and its cgroup's CPU quota)."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run(main: Callable[[asyncio.Event], Awaitable[None]], log_level: str = "INFO") -> None:
    """Run `main(stop)` until it returns; SIGTERM or SIGINT sets `stop` so it can drain and exit."""
    setup_logging(log_level)

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


def usable_cpus(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """The CPUs this process may keep busy: those it may run on (sched_getaffinity), capped by
    its cgroup's CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), rounded
    up; at least 1. A container given 1.5 CPUs on a 16-core machine has 2 usable CPUs, not 16.

    The quota is looked for in the process's own cgroup (from `proc_cgroup`) and every cgroup
    above it up to `cgroup_root`, since a parent's limit binds its children; the tightest wins.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_limit(cgroup_root, proc_cgroup)
    return max(1, min(cpus, quota) if quota is not None else cpus)


def cgroup_cpu_limit(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int | None:
    """The cgroup CPU quota in whole CPUs (rounded up), or None when there is none."""
    limits = [
        limit
        for folder in _cgroup_folders(cgroup_root, proc_cgroup)
        if (limit := _folder_limit(folder)) is not None
    ]
    return min(limits) if limits else None


def _cgroup_folders(cgroup_root: Path, proc_cgroup: Path) -> list[Path]:
    """The folders that may hold this process's CPU limit: its cgroup in the unified (v2)
    hierarchy and in v1's cpu controller, and each of their parents up to the hierarchy's root.
    A folder that does not exist (a container sees its host's path but mounts only its own
    cgroup) holds nothing; the hierarchy's root is always looked at."""
    v1_roots = [cgroup_root / name for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu")]
    folders: list[Path] = []
    for version, path in _own_cgroup_paths(proc_cgroup):
        for root in [cgroup_root] if version == 2 else v1_roots:
            folder = root / path.lstrip("/")
            while root in folder.parents:
                folders.append(folder)
                folder = folder.parent
    folders += [cgroup_root, *v1_roots]
    return list(dict.fromkeys(folders))


def _own_cgroup_paths(proc_cgroup: Path) -> list[tuple[int, str]]:
    """(2, path) of this process's unified cgroup and (1, path) of its v1 cpu controller's."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    paths = []
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if controllers == "":
            paths.append((2, path))
        elif "cpu" in controllers.split(","):
            paths.append((1, path))
    return paths


def _folder_limit(folder: Path) -> int | None:
    """The CPU limit one cgroup folder sets, in whole CPUs rounded up; None when unlimited."""
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (folder / "cpu.cfs_quota_us").read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max": no limit
        return None
    if quota_us <= 0 or period_us <= 0:  # -1: no limit (v1)
        return None
    return max(1, math.ceil(quota_us / period_us))
