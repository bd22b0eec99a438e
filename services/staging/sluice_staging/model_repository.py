"""The SQL of registered models (staging.models), always scoped to one workspace."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy

_COLUMNS = "workspace, model_id, task, spec_json, size_bytes, sha256, created_at"


@dataclass(frozen=True)
class ModelRow:
    workspace: str
    model_id: str
    task: str
    spec_json: str
    size_bytes: int
    sha256: str
    created_at: datetime


def _row(record: asyncpg.Record) -> ModelRow:
    return ModelRow(**{name: record[name] for name in _COLUMNS.split(", ")})


class ModelWriter:
    """One registration's connection, holding the model id's lock until its transaction ends."""

    def __init__(self, conn: asyncpg.Connection | PoolConnectionProxy) -> None:
        self._conn = conn

    async def put(
        self, workspace: str, model_id: str, task: str, spec_json: str, size_bytes: int, sha256: str
    ) -> ModelRow:
        """Insert the model, or replace the one registered under its id."""
        record = await self._conn.fetchrow(
            "INSERT INTO staging.models (workspace, model_id, task, spec_json, size_bytes, sha256) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workspace, model_id) DO UPDATE SET "
            "task = EXCLUDED.task, spec_json = EXCLUDED.spec_json, size_bytes = EXCLUDED.size_bytes, "
            f"sha256 = EXCLUDED.sha256, created_at = now() RETURNING {_COLUMNS}",
            workspace,
            model_id,
            task,
            spec_json,
            size_bytes,
            sha256,
        )
        assert record is not None
        return _row(record)


class ModelRepository:
    """Reads and writes `staging.models` through one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def writing(self, workspace: str, model_id: str) -> AsyncIterator[ModelWriter]:
        """A transaction holding an advisory lock on (workspace, model id), so two registrations
        of one id (on any staging replica) write the store and the row one after the other."""
        key = zlib.crc32(f"model:{workspace}/{model_id}".encode())
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", key)
            yield ModelWriter(conn)

    async def get(self, workspace: str, model_id: str) -> ModelRow | None:
        record = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM staging.models WHERE workspace = $1 AND model_id = $2",
            workspace,
            model_id,
        )
        return _row(record) if record else None

    async def list(self, workspace: str) -> list[ModelRow]:
        records = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM staging.models WHERE workspace = $1 ORDER BY model_id", workspace
        )
        return [_row(r) for r in records]
