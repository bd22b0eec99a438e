"""Settings every process reads from its environment (SLUICE_*), once, in its entry point."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"SLUICE_{name}", default)


def _rate(name: str, default: float) -> float:
    value = _env(name)
    if not value:
        return default
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if rate < 0:
        raise SystemExit(f"SLUICE_{name} must be a number of credits at least 0, not {value!r}")
    return rate


def _days(name: str, default_s: float) -> float:
    """A positive number of days in SLUICE_<name>, as seconds."""
    value = _env(name)
    if not value:
        return default_s
    try:
        days = float(value)
    except ValueError:
        days = 0.0
    if not 0 < days < 36500:
        raise SystemExit(f"SLUICE_{name} must be a positive number of days, not {value!r}")
    return days * 86400.0


@dataclass(frozen=True)
class Settings:
    """Where a process finds the rest of the mesh."""

    database_url: str = ""
    nats_url: str = "nats://127.0.0.1:4222"
    store_url: str = ""
    staging_address: str = "127.0.0.1:50051"
    scheduler_address: str = "127.0.0.1:50052"
    api_keys_file: Path | None = None
    internal_token: str = field(default="", repr=False)
    log_level: str = "INFO"
    # NATS user of the services (empty: the server has no authorization) and its password.
    nats_user: str = ""
    nats_password: str = field(default="", repr=False)
    # Where the scheduler writes the NATS users of API keys (an include of the server's
    # configuration) and the server's pid file, to reload it; empty: NATS users are not managed.
    nats_users_file: Path | None = None
    nats_pid_file: Path | None = None
    # Credits charged per hour of machine time.
    credits_per_cpu_hour: float = 1.0
    credits_per_gpu_hour: float = 4.0
    # How long the events stream of a workspace keeps an event (SLUICE_EVENTS_MAX_AGE_DAYS).
    events_max_age_s: float = 7 * 86400.0
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        keys = _env("API_KEYS_FILE")
        users_file, pid_file = _env("NATS_USERS_FILE"), _env("NATS_PID_FILE")
        return cls(
            database_url=_env("DATABASE_URL"),
            nats_url=_env("NATS_URL", cls.nats_url),
            store_url=_env("STORE_URL"),
            staging_address=_env("STAGING_ADDRESS", cls.staging_address),
            scheduler_address=_env("SCHEDULER_ADDRESS", cls.scheduler_address),
            api_keys_file=Path(keys) if keys else None,
            internal_token=_env("INTERNAL_TOKEN"),
            log_level=_env("LOG_LEVEL", "INFO"),
            nats_user=_env("NATS_USER"),
            nats_password=_env("NATS_PASSWORD"),
            nats_users_file=Path(users_file) if users_file else None,
            nats_pid_file=Path(pid_file) if pid_file else None,
            credits_per_cpu_hour=_rate("CREDITS_PER_CPU_HOUR", cls.credits_per_cpu_hour),
            credits_per_gpu_hour=_rate("CREDITS_PER_GPU_HOUR", cls.credits_per_gpu_hour),
            events_max_age_s=_days("EVENTS_MAX_AGE_DAYS", cls.events_max_age_s),
        )

    def to_env(self) -> dict[str, str]:
        """The environment that makes `from_env` return these settings in a child process."""
        env = {
            "SLUICE_DATABASE_URL": self.database_url,
            "SLUICE_NATS_URL": self.nats_url,
            "SLUICE_STORE_URL": self.store_url,
            "SLUICE_STAGING_ADDRESS": self.staging_address,
            "SLUICE_SCHEDULER_ADDRESS": self.scheduler_address,
            "SLUICE_INTERNAL_TOKEN": self.internal_token,
            "SLUICE_LOG_LEVEL": self.log_level,
            "SLUICE_NATS_USER": self.nats_user,
            "SLUICE_NATS_PASSWORD": self.nats_password,
            "SLUICE_CREDITS_PER_CPU_HOUR": repr(self.credits_per_cpu_hour),
            "SLUICE_CREDITS_PER_GPU_HOUR": repr(self.credits_per_gpu_hour),
            "SLUICE_EVENTS_MAX_AGE_DAYS": repr(self.events_max_age_s / 86400.0),
        }
        if self.api_keys_file:
            env["SLUICE_API_KEYS_FILE"] = str(self.api_keys_file)
        if self.nats_users_file:
            env["SLUICE_NATS_USERS_FILE"] = str(self.nats_users_file)
        if self.nats_pid_file:
            env["SLUICE_NATS_PID_FILE"] = str(self.nats_pid_file)
        return env
