"""The SQL of the staging schema: batches and their objects, always scoped to one workspace."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from sluice_staging.name_clashes import ancestors, clashing_within

_BATCH_COLUMNS = (
    "workspace, batch_id, type, created_at, expires_at, source_job_id, expired_at, held_until, held_by_job, "
    "notifications_url"
)
# A batch the sweep may purge: past its expiry, not purged yet, and no job's hold running ($1: now).
_DUE = "expired_at IS NULL AND expires_at <= $1 AND (held_until IS NULL OR held_until <= $1)"
_OBJECT_COLUMNS = "name, size_bytes, part_index, content_type, video"


@dataclass(frozen=True)
class BatchRow:
    workspace: str
    batch_id: str
    type: str
    created_at: datetime
    expires_at: datetime
    source_job_id: str
    # Set once the sweep deleted its bytes (sluice_staging.expiry).
    expired_at: datetime | None = None
    # A job keeps it from expiring until then (HoldBatch); the job that held it last.
    held_until: datetime | None = None
    held_by_job: str = ""
    # Where the batch's events are POSTed (sluice.webhooks); empty: nowhere.
    notifications_url: str = ""


@dataclass(frozen=True)
class ObjectRow:
    name: str
    size_bytes: int
    part_index: int
    content_type: str
    # A serialized sluice.v1.VideoInfo, for the objects of videos batches.
    video: bytes | None = None


@dataclass(frozen=True)
class NewObject:
    """An uploaded object to record (its bytes are in the store already)."""

    name: str
    size_bytes: int
    content_type: str
    video: bytes | None = None


@dataclass(frozen=True)
class RecordedGroup:
    """What Repository.put_objects did with a group: each recorded name's part, and the names
    it refused because a file and a folder of the batch would share them."""

    parts: dict[str, int]
    clashing: set[str]


@dataclass(frozen=True)
class PartStats:
    index: int
    object_count: int
    total_bytes: int


def _batch(record: asyncpg.Record) -> BatchRow:
    return BatchRow(
        workspace=record["workspace"],
        batch_id=record["batch_id"],
        type=record["type"],
        created_at=record["created_at"],
        expires_at=record["expires_at"],
        source_job_id=record["source_job_id"],
        expired_at=record["expired_at"],
        held_until=record["held_until"],
        held_by_job=record["held_by_job"],
        notifications_url=record["notifications_url"],
    )


def _object(record: asyncpg.Record) -> ObjectRow:
    return ObjectRow(
        name=record["name"],
        size_bytes=record["size_bytes"],
        part_index=record["part_index"],
        content_type=record["content_type"],
        video=record["video"],
    )


@dataclass(frozen=True)
class Expiring:
    """A batch being purged, locked in an open transaction."""

    conn: PoolConnectionProxy
    batch: BatchRow

    async def mark_expired(self, now: datetime) -> None:
        """Delete the batch's object rows and set expired_at (committed when the block ends)."""
        await self.conn.execute(
            "DELETE FROM staging.objects WHERE workspace = $1 AND batch_id = $2",
            self.batch.workspace,
            self.batch.batch_id,
        )
        await self.conn.execute(
            "UPDATE staging.batches SET expired_at = $3, object_count = 0 "
            "WHERE workspace = $1 AND batch_id = $2",
            self.batch.workspace,
            self.batch.batch_id,
            now,
        )


class Repository:
    """Reads and writes the `staging` schema through one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get_batch(self, workspace: str, batch_id: str) -> BatchRow | None:
        record = await self._pool.fetchrow(
            f"SELECT {_BATCH_COLUMNS} FROM staging.batches WHERE workspace = $1 AND batch_id = $2",
            workspace,
            batch_id,
        )
        return _batch(record) if record else None

    async def create_batch(
        self,
        workspace: str,
        batch_id: str,
        batch_type: str,
        ttl: timedelta,
        source_job_id: str = "",
        *,
        now: datetime | None = None,
        notifications_url: str = "",
    ) -> tuple[BatchRow, bool]:
        """Insert the batch unless it exists; return the stored row and whether it is new.

        It is created at `now` (None: the database's clock) and expires `ttl` later; an existing
        batch keeps its expiry.
        """
        record = await self._pool.fetchrow(
            "INSERT INTO staging.batches "
            "(workspace, batch_id, type, created_at, expires_at, source_job_id, notifications_url) "
            "VALUES ($1, $2, $3, coalesce($6::timestamptz, now()), "
            "coalesce($6::timestamptz, now()) + $4::interval, $5, $7) "
            "ON CONFLICT (workspace, batch_id) DO NOTHING "
            f"RETURNING {_BATCH_COLUMNS}",
            workspace,
            batch_id,
            batch_type,
            ttl,
            source_job_id,
            now,
            notifications_url,
        )
        if record is not None:
            return _batch(record), True
        existing = await self.get_batch(workspace, batch_id)
        if existing is None:  # deleted between the two statements; try once more
            return await self.create_batch(
                workspace,
                batch_id,
                batch_type,
                ttl,
                source_job_id,
                now=now,
                notifications_url=notifications_url,
            )
        return existing, False

    async def set_notifications_url(self, batch: BatchRow, url: str) -> BatchRow:
        """Send the batch's next events to `url`."""
        record = await self._pool.fetchrow(
            f"UPDATE staging.batches SET notifications_url = $3 WHERE workspace = $1 AND batch_id = $2 "
            f"RETURNING {_BATCH_COLUMNS}",
            batch.workspace,
            batch.batch_id,
            url,
        )
        return _batch(record) if record else batch

    async def extend_expiry(self, workspace: str, batch_id: str, expires_at: datetime) -> BatchRow | None:
        """Push a live batch's expiry to at least `expires_at`; None when it was purged."""
        record = await self._pool.fetchrow(
            "UPDATE staging.batches SET expires_at = GREATEST(expires_at, $3) "
            "WHERE workspace = $1 AND batch_id = $2 AND expired_at IS NULL "
            f"RETURNING {_BATCH_COLUMNS}",
            workspace,
            batch_id,
            expires_at,
        )
        return _batch(record) if record else None

    async def hold_batch(
        self, workspace: str, batch_id: str, job_id: str, now: datetime, until: datetime
    ) -> BatchRow | None:
        """held_until = max(held_until, until) on a batch live at `now`; None when it does not
        exist or has expired (the caller reads it to say which)."""
        record = await self._pool.fetchrow(
            "UPDATE staging.batches SET held_until = GREATEST(held_until, $4), "
            "held_by_job = $5 WHERE workspace = $1 AND batch_id = $2 AND expired_at IS NULL "
            "AND (expires_at > $3 OR held_until > $3) "
            f"RETURNING {_BATCH_COLUMNS}",
            workspace,
            batch_id,
            now,
            until,
            job_id,
        )
        return _batch(record) if record else None

    async def due_for_expiry(self, now: datetime, limit: int) -> list[BatchRow]:
        """Batches of every workspace the sweep may purge at `now`, the longest expired first."""
        records = await self._pool.fetch(
            f"SELECT {_BATCH_COLUMNS} FROM staging.batches WHERE {_DUE} ORDER BY expires_at LIMIT $2",
            now,
            limit,
        )
        return [_batch(r) for r in records]

    @contextlib.asynccontextmanager
    async def expiring(self, workspace: str, batch_id: str, now: datetime) -> AsyncIterator[Expiring | None]:
        """The batch locked for purging while the block runs, or None when it is not due at `now`
        or another replica is purging it (SKIP LOCKED). Nothing is changed unless the block calls
        `Expiring.mark_expired` and returns; an error rolls the marking back."""
        async with self._pool.acquire() as conn, conn.transaction():
            record = await conn.fetchrow(
                f"SELECT {_BATCH_COLUMNS} FROM staging.batches WHERE {_DUE} "
                "AND workspace = $2 AND batch_id = $3 FOR UPDATE SKIP LOCKED",
                now,
                workspace,
                batch_id,
            )
            yield Expiring(conn, _batch(record)) if record else None

    async def list_batches(
        self, workspace: str, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[BatchRow]:
        """Newest first; `after` is the (created_at, batch_id) of the last batch already seen."""
        after_time, after_id = after if after else (None, "")
        records = await self._pool.fetch(
            f"SELECT {_BATCH_COLUMNS} FROM staging.batches WHERE workspace = $1 "
            "AND ($2::timestamptz IS NULL OR (created_at, batch_id) < ($2::timestamptz, $3::text)) "
            "ORDER BY created_at DESC, batch_id DESC LIMIT $4",
            workspace,
            after_time,
            after_id,
            limit,
        )
        return [_batch(r) for r in records]

    async def part_stats(self, workspace: str, batch_ids: Sequence[str]) -> dict[str, list[PartStats]]:
        """Per batch, its parts in order with their object counts and bytes (empty parts absent)."""
        records = await self._pool.fetch(
            "SELECT batch_id, part_index, count(*) AS objects, "
            "coalesce(sum(size_bytes), 0)::bigint AS bytes FROM staging.objects "
            "WHERE workspace = $1 AND batch_id = ANY($2::text[]) "
            "GROUP BY batch_id, part_index ORDER BY batch_id, part_index",
            workspace,
            list(batch_ids),
        )
        stats: dict[str, list[PartStats]] = {batch_id: [] for batch_id in batch_ids}
        for r in records:
            stats[r["batch_id"]].append(PartStats(r["part_index"], r["objects"], r["bytes"]))
        return stats

    async def put_objects(
        self, workspace: str, batch_id: str, objects: Sequence[NewObject], part_size: int
    ) -> RecordedGroup | None:
        """Record a group of uploaded objects in one transaction; None (nothing recorded) when
        the batch no longer exists or has been purged.

        A name that would be a folder of an object of the batch, or sit inside one (recorded
        before, or earlier in `objects`), is not recorded but returned as clashing. A new object
        goes into part floor(objects in batch / part_size), counted in order under the batch's
        row lock; an object uploaded again keeps its part and takes the new size, type and
        `video` (a serialized VideoInfo, or None). A name given twice takes its last values.
        """
        names = list(dict.fromkeys(o.name for o in objects))
        async with self._pool.acquire() as conn, conn.transaction():
            count = await conn.fetchval(
                "SELECT object_count FROM staging.batches WHERE workspace = $1 AND batch_id = $2 "
                "AND expired_at IS NULL FOR UPDATE",
                workspace,
                batch_id,
            )
            if count is None:
                return None
            clashing, parts = await self._known_names(conn, workspace, batch_id, names)
            clashing |= clashing_within(n for n in names if n not in clashing)
            last = {o.name: o for o in objects if o.name not in clashing}
            new = [n for n in last if n not in parts]
            parts.update({n: (int(count) + i) // part_size for i, n in enumerate(new)})
            rows = list(last.values())
            await conn.execute(
                "INSERT INTO staging.objects "
                "(workspace, batch_id, name, size_bytes, part_index, content_type, video) "
                "SELECT $1, $2, n, s, p, c, v "
                "FROM unnest($3::text[], $4::bigint[], $5::integer[], $6::text[], $7::bytea[]) "
                "AS t(n, s, p, c, v) ON CONFLICT (workspace, batch_id, name) DO UPDATE "
                "SET size_bytes = EXCLUDED.size_bytes, content_type = EXCLUDED.content_type, "
                "video = EXCLUDED.video",
                workspace,
                batch_id,
                [o.name for o in rows],
                [o.size_bytes for o in rows],
                [parts[o.name] for o in rows],
                [o.content_type for o in rows],
                [o.video for o in rows],
            )
            if new:
                await conn.execute(
                    "UPDATE staging.batches SET object_count = object_count + $3 "
                    "WHERE workspace = $1 AND batch_id = $2",
                    workspace,
                    batch_id,
                    len(new),
                )
        return RecordedGroup({n: parts[n] for n in last}, clashing)

    @staticmethod
    async def _known_names(
        conn: PoolConnectionProxy, workspace: str, batch_id: str, names: Sequence[str]
    ) -> tuple[set[str], dict[str, int]]:
        """Of `names`: those that clash with a recorded object, and the recorded ones' parts."""
        above = [(folder, name) for name in names for folder in ancestors(name)]
        # With byte ordering, the names under folder "n" are those between "n/" and "n0". Each
        # lookup is a LATERAL ... LIMIT 1, so it is one index probe per name whatever the
        # planner believes of the table's size (a join would scan the batch once per name).
        records = await conn.fetch(
            "SELECT a.owner AS name, NULL::integer AS part FROM unnest($3::text[], $4::text[]) "
            "AS a(folder, owner) CROSS JOIN LATERAL (SELECT 1 FROM staging.objects o "
            "WHERE o.workspace = $1 AND o.batch_id = $2 AND o.name = a.folder LIMIT 1) AS hit "
            "UNION ALL SELECT t.n, NULL FROM unnest($5::text[]) AS t(n) CROSS JOIN LATERAL "
            "(SELECT 1 FROM staging.objects o WHERE o.workspace = $1 AND o.batch_id = $2 "
            "AND o.name > (t.n || '/') COLLATE \"C\" AND o.name < (t.n || '0') COLLATE \"C\" "
            "LIMIT 1) AS hit "
            "UNION ALL SELECT t.n, o.part_index FROM unnest($5::text[]) AS t(n) CROSS JOIN LATERAL "
            "(SELECT part_index FROM staging.objects o WHERE o.workspace = $1 AND o.batch_id = $2 "
            "AND o.name = t.n LIMIT 1) AS o",
            workspace,
            batch_id,
            [folder for folder, _ in above],
            [name for _, name in above],
            list(names),
        )
        clashing = {r["name"] for r in records if r["part"] is None}
        parts = {r["name"]: int(r["part"]) for r in records if r["part"] is not None}
        return clashing, parts

    async def sync_objects(
        self, workspace: str, batch_id: str, objects: Mapping[str, tuple[int, str]]
    ) -> bool:
        """Make the batch's rows mirror `objects` (name -> (size, content type)), all in part 0;
        False (nothing written) when the batch is gone or has been purged."""
        names = list(objects)
        sizes = [objects[n][0] for n in names]
        types = [objects[n][1] for n in names]
        async with self._pool.acquire() as conn, conn.transaction():
            live = await conn.fetchval(
                "SELECT 1 FROM staging.batches WHERE workspace = $1 AND batch_id = $2 "
                "AND expired_at IS NULL FOR UPDATE",
                workspace,
                batch_id,
            )
            if live is None:
                return False
            await conn.execute(
                "INSERT INTO staging.objects "
                "(workspace, batch_id, name, size_bytes, part_index, content_type) "
                "SELECT $1, $2, n, s, 0, c FROM unnest($3::text[], $4::bigint[], $5::text[]) "
                "AS t(n, s, c) ON CONFLICT (workspace, batch_id, name) DO UPDATE "
                "SET size_bytes = EXCLUDED.size_bytes, content_type = EXCLUDED.content_type",
                workspace,
                batch_id,
                names,
                sizes,
                types,
            )
            await conn.execute(
                "DELETE FROM staging.objects WHERE workspace = $1 AND batch_id = $2 "
                "AND NOT (name = ANY($3::text[]))",
                workspace,
                batch_id,
                names,
            )
            await conn.execute(
                "UPDATE staging.batches SET object_count = $3 WHERE workspace = $1 AND batch_id = $2",
                workspace,
                batch_id,
                len(names),
            )
        return True

    async def list_objects(
        self,
        workspace: str,
        batch_id: str,
        *,
        limit: int,
        after: str = "",
        part_index: int | None = None,
        prefix: str = "",
    ) -> list[ObjectRow]:
        """Objects ordered by name, after the name `after`; one part, or all when None; only
        names starting with `prefix`, read as the range [prefix, prefix's successor) so the
        index on names serves it (byte order is code-point order in UTF-8)."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else ""
        records = await self._pool.fetch(
            f"SELECT {_OBJECT_COLUMNS} FROM staging.objects "
            "WHERE workspace = $1 AND batch_id = $2 AND name > $3 AND name >= $6 "
            "AND ($7 = '' OR name < $7) "
            "AND ($4::integer IS NULL OR part_index = $4::integer) "
            "ORDER BY name LIMIT $5",
            workspace,
            batch_id,
            after,
            part_index,
            limit,
            prefix,
            upper,
        )
        return [_object(r) for r in records]

    async def name_clash(self, workspace: str, batch_id: str, name: str) -> bool:
        """True when `name` would be a folder of an existing object, or sit inside one."""
        # With byte ordering, the names under folder "n" are those between "n/" and "n0".
        clash = await self._pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM staging.objects WHERE workspace = $1 AND batch_id = $2 "
            "AND (name = ANY($3::text[]) OR (name > $4 AND name < $5)))",
            workspace,
            batch_id,
            ancestors(name),
            name + "/",
            name + "0",
        )
        return bool(clash)

    async def find_objects(self, workspace: str, batch_id: str, names: Iterable[str]) -> dict[str, ObjectRow]:
        """The named objects that exist, by name."""
        records = await self._pool.fetch(
            f"SELECT {_OBJECT_COLUMNS} FROM staging.objects "
            "WHERE workspace = $1 AND batch_id = $2 AND name = ANY($3::text[])",
            workspace,
            batch_id,
            list(names),
        )
        return {r["name"]: _object(r) for r in records}
