"""Who is calling: API keys resolve to a workspace (and whether the key may administer), the internal
token to a Sluice service acting for a workspace.

Keys live in Postgres (`sluice.workspaces`). A keys file (`{"<sha256 hex>": "<workspace>"}`, what
`sluice up` writes) only bootstraps an installation: its keys are admin keys, which administer the
whole installation (as any admin key does) and act on their own workspace's data; it is re-read
when it changes. Teams' keys belong in Postgres (`sluice admin create-api-key`). A key found in
Postgres is remembered for at most `CACHE_SECONDS`, so a revoked key is refused by every service
within seconds.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from sluice import workspaces
from sluice.auth_headers import API_KEY_HEADER, INTERNAL_TOKEN_HEADER, WORKSPACE_HEADER
from sluice.errors import PermissionDenied, Unauthenticated, Unavailable
from sluice.ids import validate_id
from sluice.workspaces import hash_key, new_api_key

log = logging.getLogger(__name__)

__all__ = [
    "API_KEY_HEADER",
    "CACHE_SECONDS",
    "INTERNAL_TOKEN_HEADER",
    "WORKSPACE_HEADER",
    "Caller",
    "KeyRing",
    "add_key",
    "hash_key",
    "new_api_key",
    "read_keys_file",
]

CACHE_SECONDS = 2.0
_CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class Caller:
    """The workspace a request acts in; `admin` for admin keys; `internal` for Sluice services.

    `key_id` is the Postgres key's id; empty for the internal token and for keys-file keys.
    """

    workspace: str
    admin: bool = False
    key_id: str = ""
    internal: bool = False

    @property
    def may_administer(self) -> bool:
        return self.admin or self.internal


def read_keys_file(keys_file: Path | None) -> dict[str, str]:
    """The keys file's `{sha256 hex: workspace}`; empty when there is none."""
    if keys_file is None or not keys_file.exists():
        return {}
    return {str(k): str(v) for k, v in json.loads(keys_file.read_text()).items()}


class KeyRing:
    """Resolves request metadata to a Caller: the internal token, the keys file, then Postgres."""

    def __init__(self, keys_file: Path | None, internal_token: str, pool: asyncpg.Pool | None = None) -> None:
        self._file = keys_file
        self._internal_token = internal_token
        self._pool = pool
        self._mtime = -1.0
        self._file_keys: dict[str, str] = {}
        self._bootstrapped: set[str] = set()
        self._cache: dict[str, tuple[float, Caller | None]] = {}

    async def start(self) -> None:
        """Read the keys file and create its workspaces' rows (when there is a pool)."""
        await self._reload()

    async def _reload(self) -> None:
        if self._file is None or not self._file.exists():
            return
        mtime = self._file.stat().st_mtime
        if mtime != self._mtime:
            self._file_keys = read_keys_file(self._file)
            self._mtime = mtime
        missing = set(self._file_keys.values()) - self._bootstrapped
        if missing and self._pool is not None:
            await workspaces.ensure_bootstrap_workspaces(self._pool, missing)
            self._bootstrapped |= missing

    async def caller_for(self, metadata: Mapping[str, str]) -> Caller:
        token = metadata.get(INTERNAL_TOKEN_HEADER)
        if token:
            if not self._internal_token or not hmac.compare_digest(token, self._internal_token):
                raise PermissionDenied("invalid internal token")
            return Caller(validate_id(metadata.get(WORKSPACE_HEADER, ""), "workspace"), internal=True)
        api_key = metadata.get(API_KEY_HEADER)
        if not api_key:
            raise Unauthenticated("missing API key: set SLUICE_API_KEY or pass --api-key")
        digest = hash_key(api_key)
        await self._reload()
        workspace = self._file_keys.get(digest)
        if workspace is not None:
            return Caller(workspace, admin=True)
        caller = await self._stored_caller(digest)
        if caller is None:
            raise Unauthenticated("invalid or revoked API key")
        return caller

    async def _stored_caller(self, digest: str) -> Caller | None:
        if self._pool is None:
            return None
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        try:
            row = await workspaces.find_active_key(self._pool, digest)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("cannot check an API key: the database is unavailable (%s)", error)
            raise Unavailable("cannot check the API key: the database is unavailable") from None
        caller = None if row is None else Caller(row.workspace, admin=row.admin, key_id=row.key_id)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[digest] = (now, caller)
        return caller


def add_key(keys_file: Path, workspace: str, api_key: str) -> None:
    """Record `api_key` for `workspace` in the keys file (created with mode 0600)."""
    validate_id(workspace, "workspace")
    keys = read_keys_file(keys_file)
    keys[hash_key(api_key)] = workspace
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = keys_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(keys, indent=2))
    tmp.chmod(0o600)
    tmp.replace(keys_file)
