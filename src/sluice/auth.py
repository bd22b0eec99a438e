"""API keys: each key belongs to one workspace, and every request is scoped to it.

Keys are stored hashed (sha256) in a JSON file, `{"<hex digest>": "<workspace>"}`, that every service
reads at start and re-reads when it changes. Services acting for a workspace (the scheduler asking
staging about a batch) present the internal token and name the workspace.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from pathlib import Path

from sluice.errors import PermissionDenied, Unauthenticated
from sluice.ids import validate_id

API_KEY_HEADER = "x-api-key"
INTERNAL_TOKEN_HEADER = "x-sluice-internal-token"
WORKSPACE_HEADER = "x-sluice-workspace"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_api_key() -> str:
    return "sk_" + secrets.token_urlsafe(24)


class KeyRing:
    """Resolves request metadata to a workspace."""

    def __init__(self, keys_file: Path | None, internal_token: str) -> None:
        self._file = keys_file
        self._internal_token = internal_token
        self._mtime = -1.0
        self._workspaces: dict[str, str] = {}

    def _reload(self) -> None:
        if self._file is None or not self._file.exists():
            return
        mtime = self._file.stat().st_mtime
        if mtime != self._mtime:
            self._workspaces = dict(json.loads(self._file.read_text()))
            self._mtime = mtime

    def workspace_for(self, metadata: Mapping[str, str]) -> str:
        token = metadata.get(INTERNAL_TOKEN_HEADER)
        if token:
            if not self._internal_token or not hmac.compare_digest(token, self._internal_token):
                raise PermissionDenied("invalid internal token")
            return validate_id(metadata.get(WORKSPACE_HEADER, ""), "workspace")
        api_key = metadata.get(API_KEY_HEADER)
        if not api_key:
            raise Unauthenticated("missing API key: set SLUICE_API_KEY or pass --api-key")
        self._reload()
        workspace = self._workspaces.get(hash_key(api_key))
        if workspace is None:
            raise Unauthenticated("invalid API key")
        return workspace


def add_key(keys_file: Path, workspace: str, api_key: str) -> None:
    """Record `api_key` for `workspace` in the keys file (created with mode 0600)."""
    validate_id(workspace, "workspace")
    keys = json.loads(keys_file.read_text()) if keys_file.exists() else {}
    keys[hash_key(api_key)] = workspace
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = keys_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(keys, indent=2))
    tmp.chmod(0o600)
    tmp.replace(keys_file)
