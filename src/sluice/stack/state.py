"""The local stack's state folder: its layout, stack.json, and the credentials the CLI uses.

Layout: nats/ (nats.conf, users.conf (0600): the NATS accounts and users, the pid file, js/),
postgres/, objects/ (the object store), logs/<part>.log (and logs/watchdog.log), stack.json
(ports, pids, restarts, the options of `up`), api_keys.json, internal_token and
credentials.json (the last three mode 0600).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from sluice.errors import FailedPrecondition

DEFAULT_WORKSPACE = "default"


def default_state_dir() -> Path:
    """$SLUICE_HOME, else ./.sluice."""
    return Path(os.environ.get("SLUICE_HOME") or ".sluice").absolute()


@dataclass(frozen=True)
class Layout:
    """Where each thing lives in a state folder."""

    root: Path

    @property
    def nats_dir(self) -> Path:
        return self.root / "nats"

    @property
    def nats_config_file(self) -> Path:
        return self.nats_dir / "nats.conf"

    @property
    def nats_users_file(self) -> Path:
        """The NATS accounts and users (mode 0600; `sluice.nats_auth` writes it)."""
        return self.nats_dir / "users.conf"

    @property
    def nats_pid_file(self) -> Path:
        return self.nats_dir / "nats-server.pid"

    @property
    def postgres_dir(self) -> Path:
        return self.root / "postgres"

    @property
    def objects_dir(self) -> Path:
        return self.root / "objects"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def stack_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def api_keys_file(self) -> Path:
        return self.root / "api_keys.json"

    @property
    def token_file(self) -> Path:
        return self.root / "internal_token"

    @property
    def credentials_file(self) -> Path:
        return self.root / "credentials.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    def log(self, part: str) -> Path:
        return self.logs_dir / f"{part}.log"


@dataclass
class PartRecord:
    """What stack.json remembers of one part."""

    port: int = 0
    pid: int | None = None
    marker: str = ""
    env_digest: str = ""
    restarts: int = 0


@dataclass
class UpOptions:
    """What `sluice up` was asked for, remembered so the watchdog starts the parts alike."""

    machine_type: str = "cpu"
    workers_per_machine: int = 2
    log_level: str = "INFO"
    dashboard: bool = True
    """The dashboard was asked for (`up` without `--no-dashboard`) and is installed."""
    ort_threads: int | None = None
    """The worker's `--ort-threads`; None lets the worker choose from its slots and CPUs."""
    worker_batch_size: int | None = None
    """The worker's `--batch-size` (images per workflow run); None: the worker's default."""


@dataclass
class StackFile:
    """stack.json: every part's port and, while it runs, its pid; the options of `up`."""

    parts: dict[str, PartRecord] = field(default_factory=dict)
    options: UpOptions = field(default_factory=UpOptions)

    @classmethod
    def load(cls, layout: Layout) -> StackFile:
        try:
            raw = json.loads(layout.stack_file.read_text())
        except FileNotFoundError:
            return cls()
        except ValueError as error:
            raise FailedPrecondition(f"{layout.stack_file} is damaged: {error}") from error
        known = {f.name for f in fields(PartRecord)}
        options = {f.name for f in fields(UpOptions)}
        return cls(
            {
                name: PartRecord(**{k: v for k, v in record.items() if k in known})
                for name, record in raw.get("parts", {}).items()
            },
            UpOptions(**{k: v for k, v in raw.get("options", {}).items() if k in options}),
        )

    def record(self, part: str) -> PartRecord:
        return self.parts.setdefault(part, PartRecord())

    def save(self, layout: Layout) -> None:
        parts = {k: asdict(v) for k, v in self.parts.items()}
        text = json.dumps({"parts": parts, "options": asdict(self.options)}, indent=2)
        write_file(layout.stack_file, text, 0o644)


def write_file(path: Path, text: str, mode: int) -> None:
    """Replace `path` atomically with `text`, created with `mode`."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    partial.chmod(mode)
    partial.replace(path)


def _check_traversable(root: Path) -> None:
    """As root, refuse a state folder inside a folder other users cannot traverse."""
    for parent in root.resolve().parents:
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            raise FailedPrecondition(
                f"state folder {root} is inside {parent}, which other users cannot traverse; "
                "Postgres runs as an unprivileged user and needs to reach it: choose a state "
                "folder elsewhere (e.g. under /tmp or the project folder) with --state-dir "
                "or SLUICE_HOME"
            )


def prepare_state_dir(state_dir: Path) -> Layout:
    """Create the state folder (0755); as root, check the Postgres user can reach it."""
    root = state_dir.absolute()
    as_root = os.geteuid() == 0
    if as_root:
        _check_traversable(root)
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    if as_root and not root.stat().st_mode & stat.S_IXOTH:
        root.chmod(stat.S_IMODE(root.stat().st_mode) | 0o055)
    layout = Layout(root)
    for folder in (layout.nats_dir, layout.objects_dir, layout.logs_dir):
        folder.mkdir(exist_ok=True)
    layout.postgres_dir.mkdir(mode=0o755, exist_ok=True)
    return layout


def ensure_secrets(layout: Layout) -> tuple[str, str]:
    """The stack's API key (workspace "default") and internal token, created on first use."""
    from sluice.auth import add_key, hash_key, new_api_key  # asyncpg, bcrypt: `up` only

    if layout.token_file.exists():
        token = layout.token_file.read_text().strip()
    else:
        token = secrets.token_urlsafe(32)
        write_file(layout.token_file, token + "\n", 0o600)
    api_key = ""
    if layout.credentials_file.exists():
        api_key = _read_credentials(layout.credentials_file).get("api_key", "")
    api_key = api_key or new_api_key()
    known = json.loads(layout.api_keys_file.read_text()) if layout.api_keys_file.exists() else {}
    if hash_key(api_key) not in known:
        add_key(layout.api_keys_file, DEFAULT_WORKSPACE, api_key)
    return api_key, token


def write_credentials(layout: Layout, api_key: str, staging: str, scheduler: str) -> None:
    """credentials.json (0600): what the CLI needs to reach the stack."""
    credentials = {
        "api_key": api_key,
        "staging_address": staging,
        "scheduler_address": scheduler,
        "workspace": DEFAULT_WORKSPACE,
    }
    write_file(layout.credentials_file, json.dumps(credentials, indent=2) + "\n", 0o600)


def _read_credentials(path: Path) -> dict[str, str]:
    try:
        raw = json.loads(path.read_text())
    except ValueError as error:
        raise FailedPrecondition(f"{path} is damaged: {error}") from error
    return {str(k): str(v) for k, v in raw.items()}


def load_credentials(state_dir: Path) -> dict[str, str]:
    """The API key, workspace and service addresses `sluice up` wrote for `state_dir`."""
    path = Layout(state_dir.absolute()).credentials_file
    if not path.exists():
        raise FailedPrecondition(
            f"no local stack in {state_dir.absolute()}: run `sluice up` first "
            "(or point --state-dir / SLUICE_HOME at its folder)"
        )
    return _read_credentials(path)
