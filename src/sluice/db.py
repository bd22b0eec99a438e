"""Postgres through asyncpg: a pool per service and migrations of the service's own schema.

Each service keeps its SQL migrations as numbered files (001_init.sql, ...) in its own package and
calls `migrate` at start; an advisory lock keeps two replicas from migrating at once.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """A released connection's reset: nothing to send.

    asyncpg's default reset sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`
    on every release, a round trip per query made through the pool (7 % of the scheduler's time
    on a tiny-image job). The services keep no session state: advisory locks are per transaction
    (`pg_advisory_xact_lock`), settings `SET LOCAL`, no LISTEN, no cursors outside a transaction,
    and asyncpg still rolls back a transaction left open before calling this.
    """


async def connect(database_url: str, schema: str | None = None, attempts: int = 50) -> asyncpg.Pool:
    """A pool (whose search_path is `schema` when given), retrying while Postgres starts."""
    settings = {"search_path": f'"{schema}"'} if schema else None
    for attempt in range(attempts):
        try:
            pool = await asyncpg.create_pool(
                database_url, min_size=1, max_size=8, server_settings=settings, reset=_keep_session
            )
            assert pool is not None
            return pool
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.PostgresConnectionError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.2)
    raise RuntimeError("unreachable")


async def migrate(pool: asyncpg.Pool, schema: str, package: str) -> list[str]:
    """Apply `package`'s migrations/*.sql to `schema` in order; return the ones applied now."""
    files = sorted(
        (f for f in resources.files(package).joinpath("migrations").iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    applied: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", zlib.crc32(schema.encode()))
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations '
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch(f'SELECT name FROM "{schema}".schema_migrations')}
        for migration in files:
            if migration.name in done:
                continue
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute(migration.read_text())
            await conn.execute(f'INSERT INTO "{schema}".schema_migrations (name) VALUES ($1)', migration.name)
            applied.append(migration.name)
    if applied:
        log.info("schema %s: applied %s", schema, ", ".join(applied))
    return applied
