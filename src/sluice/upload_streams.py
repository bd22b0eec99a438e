"""How a client cuts files into UploadFiles streams: groups of files per stream, chunks per file.

Shared by the CLI (files on disk) and the dashboard (files a browser sent): one stream carries
at most FILES_PER_STREAM files and about BYTES_PER_STREAM bytes, so a failed stream costs little
to resend, and each file goes in CHUNK_BYTES chunks with `last` on its final one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from sluice.v1 import staging_pb2

CHUNK_BYTES = 1024 * 1024
FILES_PER_STREAM = 500
BYTES_PER_STREAM = 256 * 1024 * 1024

T = TypeVar("T")


def stream_groups(files: Sequence[T], size_of: Callable[[T], int]) -> Iterator[list[T]]:
    """`files` in runs of at most FILES_PER_STREAM files and about BYTES_PER_STREAM bytes."""
    group: list[T] = []
    group_bytes = 0
    for item in files:
        size = size_of(item)
        if group and (len(group) >= FILES_PER_STREAM or group_bytes + size > BYTES_PER_STREAM):
            yield group
            group, group_bytes = [], 0
        group.append(item)
        group_bytes += size
    if group:
        yield group


def file_chunks(batch_id: str, name: str, pieces: Iterable[bytes]) -> Iterator[staging_pb2.UploadChunk]:
    """One file's UploadChunks from its pieces (each at most CHUNK_BYTES); an empty file is one
    empty chunk, and the last chunk says so."""
    pending: bytes | None = None
    for piece in pieces:
        if pending is not None:
            yield staging_pb2.UploadChunk(batch_id=batch_id, file_name=name, data=pending, last=False)
        pending = piece
    yield staging_pb2.UploadChunk(batch_id=batch_id, file_name=name, data=pending or b"", last=True)


def byte_pieces(data: bytes) -> Iterator[bytes]:
    """`data` in pieces of CHUNK_BYTES."""
    for offset in range(0, len(data), CHUNK_BYTES):
        yield data[offset : offset + CHUNK_BYTES]
