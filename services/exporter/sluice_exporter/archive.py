"""Packing an export into .tar.gz archives of bounded size.

Members are split in order: a new archive starts before the running uncompressed total of member
sizes would pass the limit, and a member larger than the limit gets an archive of its own.
Unpacking every archive into one folder reconstructs the export.
"""

from __future__ import annotations

import io
import re
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

DEFAULT_MAX_ARCHIVE_BYTES = 512 * 1024 * 1024
ARCHIVE_NAME_RE = re.compile(r"^export-(\d{5,})\.tar\.gz$")
# Archives are built in a temporary file that stays in memory up to this size.
SPOOL_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Member:
    """A file in the export: its path inside the archive and its size in bytes."""

    name: str
    size: int


def archive_name(index: int) -> str:
    return f"export-{index:05d}.tar.gz"


def archive_index(name: str) -> int | None:
    """The index of an archive named by `archive_name`, or None for any other name."""
    match = ARCHIVE_NAME_RE.match(name)
    return int(match.group(1)) if match else None


def effective_limit(max_archive_bytes: int) -> int:
    """The archive size limit of a task (0 or less means the default)."""
    return max_archive_bytes if max_archive_bytes > 0 else DEFAULT_MAX_ARCHIVE_BYTES


def plan_archives(members: Iterable[Member], max_bytes: int) -> list[list[Member]]:
    """Split `members`, in order, into groups whose sizes add up to at most `max_bytes`.

    A member larger than `max_bytes` is alone in its group. No members give no groups.
    """
    groups: list[list[Member]] = []
    total = 0
    for member in members:
        if not groups or (groups[-1] and total + member.size > max_bytes):
            groups.append([])
            total = 0
        groups[-1].append(member)
        total += member.size
    return groups


def pack(
    members: Sequence[Member],
    read: Callable[[str], bytes],
    mtime: float | None = None,
    compresslevel: int = 6,
) -> bytes:
    """A .tar.gz holding `members`, each read by name with `read` one at a time.

    The archive grows in a temporary file (spilling to disk past SPOOL_BYTES), so only the
    member being added and the finished archive are held in memory.
    """
    stamp = time.time() if mtime is None else mtime
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        with tarfile.open(fileobj=spool, mode="w:gz", compresslevel=compresslevel) as tar:
            for member in members:
                data = read(member.name)
                info = tarfile.TarInfo(member.name)
                info.size = len(data)
                info.mtime = int(stamp)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
        spool.seek(0)
        packed: bytes = spool.read()
    return packed
