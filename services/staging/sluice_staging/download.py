"""Streaming an object of the store as DownloadChunks, reading it a chunk at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from sluice import storage
from sluice.errors import NotFound
from sluice.v1 import staging_pb2

CHUNK_BYTES = 1024 * 1024


async def object_chunks(
    folder_url: str, name: str, chunk_bytes: int = CHUNK_BYTES
) -> AsyncIterator[staging_pb2.DownloadChunk]:
    """The chunks of the object `name` under `folder_url`, the last one with last=True (one chunk
    when empty)."""
    fs, path = storage.object_path(folder_url, name)
    try:
        size = int(await asyncio.to_thread(fs.size, path))
        handle = await asyncio.to_thread(fs.open, path, "rb")
    except FileNotFoundError as error:
        raise NotFound(f"object {name!r} is missing from the object store") from error
    try:
        data = await asyncio.to_thread(handle.read, chunk_bytes)
        while True:
            following = await asyncio.to_thread(handle.read, chunk_bytes) if data else b""
            yield staging_pb2.DownloadChunk(name=name, data=data, last=not following, size_bytes=size)
            if not following:
                return
            data = following
    finally:
        await asyncio.to_thread(handle.close)
