"""Workspaces and API keys in Postgres (schema `auth`, `sluice.auth_schema`), shared by every service.

An API key's secret (`sk_...`) is shown once, when it is created, and never stored: the table keeps
its sha256 (to find the key of a request) and a bcrypt of it (the password hash of the key's NATS
user, whose name is the key id). Every query names the schema, so any service's pool can run them.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import bcrypt

from sluice.errors import AlreadyExists, InvalidArgument, NotFound
from sluice.ids import validate_id

KEY_ID_PREFIX = "key_"
MAX_KEY_NAME = 200
# nats-server checks a password against a hash starting "$2a$" (what its own tool writes); cost 11
# is that tool's default too: a connection takes ~0.1 s to check, a guess as long.
_BCRYPT_PREFIX = b"2a"
# The key is 24 random bytes, so a low cost loses nothing against guessing; nats-server checks
# every connected user's hash again on each reload, and a high cost stalls JetStream meanwhile.
_BCRYPT_ROUNDS = 4

_KEY_COLUMNS = "key_id, workspace, name, admin, created_at, revoked_at, nats_password_hash"


def hash_key(api_key: str) -> str:
    """The sha256 hex digest a key is looked up by."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_api_key() -> str:
    """A fresh API key secret."""
    return "sk_" + secrets.token_urlsafe(24)


def new_key_id() -> str:
    """A fresh public key id (also the key's NATS user name): 'key_' and 12 hex digits."""
    return KEY_ID_PREFIX + secrets.token_hex(6)


def nats_password_hash(api_key: str) -> str:
    """The bcrypt hash nats-server checks the key against (CPU-heavy: call it off the event loop)."""
    salt = bcrypt.gensalt(rounds=_BCRYPT_ROUNDS, prefix=_BCRYPT_PREFIX)
    return bcrypt.hashpw(api_key.encode(), salt).decode()


@dataclass(frozen=True)
class WorkspaceRow:
    workspace: str
    created_at: datetime
    webhook_secret: str


@dataclass(frozen=True)
class ApiKeyRow:
    """A key as stored (never its secret). `nats_password_hash` is for the NATS configuration only."""

    key_id: str
    workspace: str
    name: str
    admin: bool
    created_at: datetime
    revoked_at: datetime | None
    nats_password_hash: str

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _workspace(row: asyncpg.Record) -> WorkspaceRow:
    return WorkspaceRow(row["workspace"], row["created_at"], row["webhook_secret"])


def _key(row: asyncpg.Record) -> ApiKeyRow:
    return ApiKeyRow(
        row["key_id"],
        row["workspace"],
        row["name"],
        row["admin"],
        row["created_at"],
        row["revoked_at"],
        row["nats_password_hash"],
    )


def _new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


async def create_workspace(pool: asyncpg.Pool, workspace: str) -> WorkspaceRow:
    """A new workspace with a random webhook secret; ALREADY_EXISTS when it exists."""
    validate_id(workspace, "workspace")
    row = await pool.fetchrow(
        "INSERT INTO auth.workspaces (workspace, webhook_secret) VALUES ($1, $2) "
        "ON CONFLICT (workspace) DO NOTHING RETURNING workspace, created_at, webhook_secret",
        workspace,
        _new_webhook_secret(),
    )
    if row is None:
        raise AlreadyExists(f"workspace {workspace!r} already exists")
    return _workspace(row)


async def ensure_workspace(pool: asyncpg.Pool, workspace: str) -> WorkspaceRow:
    """The workspace's row, created (with a random webhook secret) when missing."""
    validate_id(workspace, "workspace")
    await pool.execute(
        "INSERT INTO auth.workspaces (workspace, webhook_secret) VALUES ($1, $2) "
        "ON CONFLICT (workspace) DO NOTHING",
        workspace,
        _new_webhook_secret(),
    )
    found = await get_workspace(pool, workspace)
    assert found is not None
    return found


async def ensure_bootstrap_workspaces(pool: asyncpg.Pool, workspaces: Iterable[str]) -> None:
    """Create the rows of the keys file's workspaces that have none yet (services, at start)."""
    for workspace in sorted(set(workspaces)):
        await ensure_workspace(pool, workspace)


async def get_workspace(pool: asyncpg.Pool, workspace: str) -> WorkspaceRow | None:
    row = await pool.fetchrow(
        "SELECT workspace, created_at, webhook_secret FROM auth.workspaces WHERE workspace = $1", workspace
    )
    return None if row is None else _workspace(row)


async def list_workspaces(pool: asyncpg.Pool) -> list[WorkspaceRow]:
    rows = await pool.fetch(
        "SELECT workspace, created_at, webhook_secret FROM auth.workspaces ORDER BY workspace"
    )
    return [_workspace(r) for r in rows]


async def webhook_secret(pool: asyncpg.Pool, workspace: str) -> str:
    """The key of the workspace's webhook signatures (HMAC-SHA256); the row is created if missing."""
    return (await ensure_workspace(pool, workspace)).webhook_secret


async def create_api_key(
    pool: asyncpg.Pool, workspace: str, name: str = "", admin: bool = False
) -> tuple[ApiKeyRow, str]:
    """A new key of an existing workspace: its row and its secret (the one time it is seen)."""
    validate_id(workspace, "workspace")
    if len(name) > MAX_KEY_NAME or any(not c.isprintable() for c in name):
        raise InvalidArgument(f"invalid key name: at most {MAX_KEY_NAME} printable characters")
    if await get_workspace(pool, workspace) is None:
        raise NotFound(f"no workspace {workspace!r}: create it first with 'sluice admin create-workspace'")
    api_key = new_api_key()
    password_hash = await asyncio.to_thread(nats_password_hash, api_key)
    row = await pool.fetchrow(
        "INSERT INTO auth.api_keys (key_id, workspace, name, key_hash, nats_password_hash, admin) "
        f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_KEY_COLUMNS}",
        new_key_id(),
        workspace,
        name,
        hash_key(api_key),
        password_hash,
        admin,
    )
    assert row is not None
    return _key(row), api_key


async def list_api_keys(
    pool: asyncpg.Pool, workspace: str | None = None, include_revoked: bool = False
) -> list[ApiKeyRow]:
    """Keys, oldest first: of one workspace or (None) of all; revoked ones only when asked."""
    rows = await pool.fetch(
        f"SELECT {_KEY_COLUMNS} FROM auth.api_keys "
        "WHERE ($1::text IS NULL OR workspace = $1) AND ($2 OR revoked_at IS NULL) "
        "ORDER BY created_at, key_id",
        workspace,
        include_revoked,
    )
    return [_key(r) for r in rows]


async def get_api_key(pool: asyncpg.Pool, key_id: str) -> ApiKeyRow | None:
    row = await pool.fetchrow(f"SELECT {_KEY_COLUMNS} FROM auth.api_keys WHERE key_id = $1", key_id)
    return None if row is None else _key(row)


async def revoke_api_key(pool: asyncpg.Pool, key_id: str) -> ApiKeyRow:
    """Revoke a key (revoking it again keeps the first time); NOT_FOUND for an unknown id."""
    row = await pool.fetchrow(
        "UPDATE auth.api_keys SET revoked_at = coalesce(revoked_at, now()) "
        f"WHERE key_id = $1 RETURNING {_KEY_COLUMNS}",
        key_id,
    )
    if row is None:
        raise NotFound(f"no API key {key_id!r}")
    return _key(row)


async def find_active_key(pool: asyncpg.Pool, key_hash: str) -> ApiKeyRow | None:
    """The unrevoked key whose secret hashes to `key_hash`, if any."""
    row = await pool.fetchrow(
        f"SELECT {_KEY_COLUMNS} FROM auth.api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
    )
    return None if row is None else _key(row)


async def active_keys(pool: asyncpg.Pool) -> list[ApiKeyRow]:
    """Every unrevoked key of every workspace (what the NATS configuration lists)."""
    return await list_api_keys(pool, None, include_revoked=False)
