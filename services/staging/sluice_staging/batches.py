"""Rules about batches: their types, who may write them, and when they are gone."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sluice.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from sluice.v1 import common_pb2
from sluice_staging.repository import BatchRow

DEFAULT_TTL = timedelta(days=7)
MAX_TTL = timedelta(days=3650)
"""The longest a batch may be kept (CreateBatchRequest.ttl_seconds)."""
MAX_HOLD = timedelta(days=1)
"""The longest one HoldBatch keeps a batch (the scheduler renews shorter holds while a job runs)."""
DEFAULT_PART_SIZE = 20000
MAX_FILE_BYTES = 256 * 1024 * 1024
"""The largest file an images batch takes (held in memory while it is received)."""
MAX_VIDEO_BYTES = 16 * 1024**3
"""The largest file a videos batch takes (spooled to a temporary file while it is received)."""

TYPE_NAMES: dict[common_pb2.BatchType, str] = {
    common_pb2.BATCH_TYPE_IMAGES: "images",
    common_pb2.BATCH_TYPE_VIDEOS: "videos",
    common_pb2.BATCH_TYPE_PROCESSING_RESULTS: "processing_results",
    common_pb2.BATCH_TYPE_EXPORT: "export",
}
TYPE_VALUES: dict[str, common_pb2.BatchType] = {name: value for value, name in TYPE_NAMES.items()}
USER_TYPES = frozenset({"images", "videos"})
OUTPUT_TYPES = frozenset({"processing_results", "export"})


def type_name(value: common_pb2.BatchType, allowed: frozenset[str]) -> str:
    """The stored name of a BatchType value, refusing types outside `allowed`."""
    name = TYPE_NAMES.get(value)
    if name is None or name not in allowed:
        choices = " or ".join(sorted(allowed))
        raise InvalidArgument(f"invalid batch type: use {choices}")
    return name


def batch_ttl(ttl_seconds: float, default: timedelta) -> timedelta:
    """How long a new batch is kept: `ttl_seconds` (0: the installation's `default`)."""
    if ttl_seconds == 0:
        return default
    if not math.isfinite(ttl_seconds) or ttl_seconds < 0 or ttl_seconds > MAX_TTL.total_seconds():
        raise InvalidArgument(
            f"ttl_seconds must be a positive number of seconds, at most {MAX_TTL.total_seconds():.0f} "
            f"({MAX_TTL.days} days), or 0 for the installation's default; got {ttl_seconds!r}"
        )
    return timedelta(seconds=ttl_seconds)


def hold_length(hold_seconds: float) -> timedelta:
    """How long HoldBatch keeps a batch from now."""
    if not math.isfinite(hold_seconds) or hold_seconds <= 0 or hold_seconds > MAX_HOLD.total_seconds():
        raise InvalidArgument(
            f"hold_seconds must be positive and at most {MAX_HOLD.total_seconds():.0f}; got {hold_seconds!r}"
        )
    return timedelta(seconds=hold_seconds)


def lapses_at(batch: BatchRow) -> datetime:
    """When the batch stops being live: its expiry, or the end of a job's hold when later."""
    if batch.held_until is not None and batch.held_until > batch.expires_at:
        return batch.held_until
    return batch.expires_at


def is_expired(batch: BatchRow, now: datetime) -> bool:
    """Purged already, or past its expiry with no job holding it (the sweep will purge it)."""
    return batch.expired_at is not None or lapses_at(batch) <= now


def expired_message(batch: BatchRow) -> str:
    when = lapses_at(batch).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if batch.type in OUTPUT_TYPES:
        job = f" of job {batch.source_job_id!r}" if batch.source_job_id else ""
        return f"batch {batch.batch_id!r} expired on {when}: the outputs{job} it held were deleted"
    return (
        f"batch {batch.batch_id!r} expired on {when}: its files were deleted; "
        "stage them again under a new batch id"
    )


def require_live(
    batch: BatchRow | None, batch_id: str, *, hint: str = "", now: datetime | None = None
) -> BatchRow:
    """The batch when it exists and has not expired; else NotFound or FailedPrecondition."""
    if batch is None:
        raise NotFound(f"batch {batch_id!r} not found{hint}")
    if is_expired(batch, now or datetime.now(UTC)):
        raise FailedPrecondition(expired_message(batch))
    return batch


def require_same_type(batch: BatchRow, wanted: str) -> None:
    """Creating a batch that exists is fine only with the same type (so uploads resume)."""
    if batch.type != wanted:
        raise AlreadyExists(f"batch {batch.batch_id!r} already exists with type {batch.type}, not {wanted}")
