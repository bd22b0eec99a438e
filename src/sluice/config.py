"""Settings every process reads from its environment (SLUICE_*), once, in its entry point."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"SLUICE_{name}", default)


@dataclass(frozen=True)
class Settings:
    """Where a process finds the rest of the mesh."""

    database_url: str = ""
    nats_url: str = "nats://127.0.0.1:4222"
    store_url: str = ""
    staging_address: str = "127.0.0.1:50051"
    scheduler_address: str = "127.0.0.1:50052"
    api_keys_file: Path | None = None
    internal_token: str = ""
    log_level: str = "INFO"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        keys = _env("API_KEYS_FILE")
        return cls(
            database_url=_env("DATABASE_URL"),
            nats_url=_env("NATS_URL", cls.nats_url),
            store_url=_env("STORE_URL"),
            staging_address=_env("STAGING_ADDRESS", cls.staging_address),
            scheduler_address=_env("SCHEDULER_ADDRESS", cls.scheduler_address),
            api_keys_file=Path(keys) if keys else None,
            internal_token=_env("INTERNAL_TOKEN"),
            log_level=_env("LOG_LEVEL", "INFO"),
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
        }
        if self.api_keys_file:
            env["SLUICE_API_KEYS_FILE"] = str(self.api_keys_file)
        return env
