"""How a client cuts files into UploadFiles streams: groups of files per stream, chunks per file.

Shared by the CLI (files on disk) and the dashboard (files a browser sent): one stream carries
at most FILES_PER_STREAM files and about BYTES_PER_STREAM bytes, so a failed stream costs little
to resend, and each file goes in CHUNK_BYTES chunks with `last` on its final one. The CLI sends
several streams at once (UPLOAD_STREAMS, or what `--upload-streams` says); `files_per_stream`
spreads a folder over them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from sluice.v1 import staging_pb2

CHUNK_BYTES = 1024 * 1024
FILES_PER_STREAM = 500
BYTES_PER_STREAM = 256 * 1024 * 1024
UPLOAD_STREAMS = 4
"""Streams the CLI keeps open at once by default (`--upload-streams`)."""
MAX_UPLOAD_STREAMS = 16
"""The most `--upload-streams` takes: each stream is a gRPC call and a thread of the CLI."""
MIN_FILES_PER_STREAM = 100
"""Fewer files than this share one stream (each stream costs a call and a batch_ingested event)."""

T = TypeVar("T")


def files_per_stream(count: int, streams: int) -> int:
    """How many of `count` files one stream carries so that `streams` streams share them (at
    least MIN_FILES_PER_STREAM, at most FILES_PER_STREAM)."""
    spread = math.ceil(count / max(1, streams))
    return min(FILES_PER_STREAM, max(MIN_FILES_PER_STREAM, spread))


def stream_groups(
    files: Sequence[T], size_of: Callable[[T], int], per_stream: int = FILES_PER_STREAM
) -> Iterator[list[T]]:
    """`files` in runs of at most `per_stream` (at most FILES_PER_STREAM) files and about
    BYTES_PER_STREAM bytes."""
    most = max(1, min(per_stream, FILES_PER_STREAM))
    group: list[T] = []
    group_bytes = 0
    for item in files:
        size = size_of(item)
        if group and (len(group) >= most or group_bytes + size > BYTES_PER_STREAM):
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
