"""Bytes of a batch for the browser: a job's export batch as one in-memory .zip, or one object (an
annotated video to play).

The bytes live in the dashboard's memory until the browser has them, so both refuse above a cap
(checked on the sizes staging reports before anything is downloaded, and again while streaming)
and say which CLI command downloads it instead.
"""

from __future__ import annotations

import io
import zipfile
from typing import IO

from sluice.cli.output import human_bytes
from sluice.v1 import staging_pb2
from sluice_dashboard.client import STAGING, Services

MAX_EXPORT_BYTES = 512 * 1024 * 1024
MAX_OBJECT_BYTES = 256 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 600.0


class TooLarge(Exception):
    """More bytes than the dashboard serves; the message names the CLI command to use."""


def export_command(batch_id: str) -> str:
    return f"sluice data-staging export-batch --batch-id {batch_id} --target-dir DIR"


def _too_large(batch_id: str, size: int, cap: int) -> TooLarge:
    return TooLarge(
        f"Batch {batch_id} holds {human_bytes(size)}, more than the {human_bytes(cap)} the dashboard "
        f"packs into a download. Download it with the CLI instead: {export_command(batch_id)}"
    )


def export_zip(
    svc: Services, batch_id: str, max_bytes: int = MAX_EXPORT_BYTES, timeout_s: float = DOWNLOAD_TIMEOUT_S
) -> bytes:
    """Every object of `batch_id` as an entry of a .zip (stored, not compressed again: the export's
    archives are .tar.gz already). Raises TooLarge above `max_bytes`, ServiceError when a call fails."""
    batch = svc.call(STAGING, "GetBatch", staging_pb2.GetBatchRequest(batch_id=batch_id))
    if batch.total_bytes > max_bytes:
        raise _too_large(batch_id, batch.total_bytes, max_bytes)
    buffer = io.BytesIO()
    received = 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        entry: IO[bytes] | None = None
        current = ""
        request = staging_pb2.DownloadObjectsRequest(batch_id=batch_id)
        for chunk in svc.stream(STAGING, "DownloadObjects", request, timeout_s=timeout_s):
            received += len(chunk.data)
            if received > max_bytes:  # the batch grew since GetBatch
                raise _too_large(batch_id, received, max_bytes)
            if entry is None or chunk.name != current:
                if entry is not None:
                    entry.close()
                current = chunk.name
                entry = archive.open(zipfile.ZipInfo(current), "w", force_zip64=True)
            entry.write(chunk.data)
            if chunk.last:
                entry.close()
                entry = None
        if entry is not None:
            entry.close()
    return buffer.getvalue()


def object_bytes(
    svc: Services,
    batch_id: str,
    name: str,
    size_bytes: int,
    max_bytes: int = MAX_OBJECT_BYTES,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
) -> bytes:
    """One object's bytes (`size_bytes` as ListBatchContent reported it). Raises TooLarge above
    `max_bytes`, ServiceError when the call fails."""
    if size_bytes > max_bytes:
        raise TooLarge(
            f"{name} is {human_bytes(size_bytes)}, more than the {human_bytes(max_bytes)} the dashboard "
            f"plays in the page. Download it with the CLI instead: {export_command(batch_id)}"
        )
    parts: list[bytes] = []
    received = 0
    request = staging_pb2.DownloadObjectsRequest(batch_id=batch_id, names=[name])
    for chunk in svc.stream(STAGING, "DownloadObjects", request, timeout_s=timeout_s):
        received += len(chunk.data)
        if received > max_bytes:
            raise TooLarge(f"{name} grew past {human_bytes(max_bytes)} while downloading")
        parts.append(chunk.data)
    return b"".join(parts)
