"""How many CPUs a process may use: its affinity, capped by its cgroup's CPU quota.

Each test lays out a cgroup tree the way the kernel shows it (v2 `cpu.max`, v1
`cpu.cfs_quota_us` / `cpu.cfs_period_us`, and the process's `/proc/self/cgroup` lines) in a
temporary folder and points the functions at it.
"""

from __future__ import annotations

import os
from pathlib import Path

from sluice.runtime import cgroup_cpu_limit, usable_cpus
from sluice_worker.threads import choose_ort_threads

AFFINITY = len(os.sched_getaffinity(0))


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def _v2(tmp_path: Path, cpu_max: str, own: str = "/") -> tuple[Path, Path]:
    """A unified hierarchy whose cgroup `own` has `cpu_max`; (cgroup root, proc cgroup file)."""
    root, proc = tmp_path / "cgroup", tmp_path / "proc-self-cgroup"
    _write(root / own.lstrip("/") / "cpu.max", cpu_max)
    _write(proc, f"0::{own}")
    return root, proc


def test_a_v2_quota_counts_in_whole_cpus_rounded_up(tmp_path: Path) -> None:
    expected = {"150000 100000": 2, "250000 100000": 3, "100000 100000": 1, "1000 100000": 1}
    for cpu_max, cpus in expected.items():
        root, proc = _v2(tmp_path / cpu_max.replace(" ", "-"), cpu_max)
        assert cgroup_cpu_limit(root, proc) == cpus, cpu_max


def test_no_quota_leaves_the_affinity(tmp_path: Path) -> None:
    root, proc = _v2(tmp_path, "max 100000")
    assert cgroup_cpu_limit(root, proc) is None
    assert usable_cpus(root, proc) == AFFINITY
    empty = tmp_path / "nothing-mounted"
    assert cgroup_cpu_limit(empty, empty / "cgroup") is None
    assert usable_cpus(empty, empty / "cgroup") == AFFINITY


def test_the_quota_caps_the_affinity_and_never_raises_it(tmp_path: Path) -> None:
    root, proc = _v2(tmp_path / "half", "50000 100000")
    assert usable_cpus(root, proc) == 1
    root, proc = _v2(tmp_path / "many", f"{(AFFINITY + 14) * 100_000} 100000")
    assert usable_cpus(root, proc) == AFFINITY


def test_a_parent_cgroup_limit_binds_its_children(tmp_path: Path) -> None:
    root, proc = _v2(tmp_path, "max 100000", own="/kubepods/pod-a/container-b")
    _write(root / "kubepods" / "pod-a" / "cpu.max", "120000 100000")
    _write(root / "kubepods" / "cpu.max", "800000 100000")
    assert cgroup_cpu_limit(root, proc) == 2


def test_a_container_that_mounts_only_its_own_cgroup(tmp_path: Path) -> None:
    """The proc file names the host's path, the mount holds the container's cgroup at its root."""
    root, proc = tmp_path / "cgroup", tmp_path / "proc-self-cgroup"
    _write(root / "cpu.max", "100000 100000")
    _write(proc, "0::/system.slice/docker-0123.scope")
    assert cgroup_cpu_limit(root, proc) == 1


def test_a_v1_cfs_quota(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "proc-self-cgroup"
    _write(proc, "4:memory:/job\n3:cpu,cpuacct:/job\n2:cpuacct:/\n0::/")
    _write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000")
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1")
    _write(root / "cpu,cpuacct" / "job" / "cpu.cfs_period_us", "50000")
    _write(root / "cpu,cpuacct" / "job" / "cpu.cfs_quota_us", "75000")
    assert cgroup_cpu_limit(root, proc) == 2
    _write(root / "cpu,cpuacct" / "job" / "cpu.cfs_quota_us", "-1")
    assert cgroup_cpu_limit(root, proc) is None


def test_this_machine() -> None:
    assert 1 <= usable_cpus() <= AFFINITY


def test_ort_threads_share_the_usable_cpus_among_the_slots() -> None:
    assert choose_ort_threads(None, slots=2, cpus=2).per_session == 1
    assert choose_ort_threads(None, slots=2, cpus=16).per_session == 8
    assert choose_ort_threads(None, slots=4, cpus=2).per_session == 1  # never 0
    assert choose_ort_threads(None, slots=3, cpus=8).per_session == 2
    chosen = choose_ort_threads(None, slots=2, cpus=2)
    assert chosen.describe() == "ort threads 1 per session (2 usable cpus, 2 slots)"
    given = choose_ort_threads(3, slots=2, cpus=2)
    assert given.per_session == 3
    assert given.describe() == "ort threads 3 per session (--ort-threads)"
    assert choose_ort_threads(None, slots=1).per_session == usable_cpus()
