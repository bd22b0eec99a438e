"""Rules about batches: their types, who may write them, and when they are gone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sluice.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from sluice.v1 import common_pb2
from sluice_staging.repository import BatchRow

DEFAULT_TTL = timedelta(days=7)
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


def require_live(
    batch: BatchRow | None, batch_id: str, *, hint: str = "", now: datetime | None = None
) -> BatchRow:
    """The batch when it exists and has not expired; else NotFound or FailedPrecondition."""
    if batch is None:
        raise NotFound(f"batch {batch_id!r} not found{hint}")
    if batch.expires_at <= (now or datetime.now(UTC)):
        when = batch.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        raise FailedPrecondition(f"batch {batch_id!r} expired on {when}")
    return batch


def require_same_type(batch: BatchRow, wanted: str) -> None:
    """Creating a batch that exists is fine only with the same type (so uploads resume)."""
    if batch.type != wanted:
        raise AlreadyExists(f"batch {batch.batch_id!r} already exists with type {batch.type}, not {wanted}")
