"""Receiving a RegisterModel stream: the first chunk's spec, then the file's bytes to a local file."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sluice.errors import InvalidArgument
from sluice.models.spec import ModelSpec
from sluice.v1 import models_pb2
from sluice_staging.model_rules import check_registration


@dataclass(frozen=True)
class ReceivedModel:
    spec: ModelSpec
    path: Path
    size_bytes: int
    sha256: str


def _size_text(size: int) -> str:
    gib, mib = 1024**3, 1024**2
    if size % gib == 0:
        return f"{size // gib} GiB"
    return f"{size // mib} MiB" if size % mib == 0 else f"{size} bytes"


async def receive_model(
    chunks: AsyncIterable[models_pb2.RegisterModelChunk], target: Path, max_bytes: int
) -> ReceivedModel:
    """Check the first chunk's id and spec, then write the bytes to `target` (hashing them)."""
    spec: ModelSpec | None = None
    digest = hashlib.sha256()
    size = 0
    handle: BinaryIO = await asyncio.to_thread(target.open, "wb")
    try:
        async for chunk in chunks:
            if spec is None:
                spec = check_registration(chunk.model_id, chunk.spec_json)
            elif chunk.model_id and chunk.model_id != spec.model_id:
                raise InvalidArgument(
                    f"one stream registers one model: got {chunk.model_id!r} after {spec.model_id!r}"
                )
            if not chunk.data:
                continue
            size += len(chunk.data)
            if size > max_bytes:
                raise InvalidArgument(f"model files over {_size_text(max_bytes)} are not accepted")
            digest.update(chunk.data)
            await asyncio.to_thread(handle.write, chunk.data)
    finally:
        await asyncio.to_thread(handle.close)
    if spec is None:
        raise InvalidArgument("RegisterModel got no chunks: send model_id and spec_json first")
    if size == 0:
        raise InvalidArgument(f"model '{spec.model_id}': no file bytes came after the spec")
    return ReceivedModel(spec, target, size, digest.hexdigest())
