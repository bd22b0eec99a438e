"""The streaming upload: chunks become files, files become objects of one batch.

A stream carries many files, each a run of chunks ending with `last=True`. A file that cannot be
staged (a bad name, not an image in an images batch, too large, cut short) is reported in the
summary with its reason and skipped; the rest of the stream carries on.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import posixpath
from collections.abc import AsyncIterable
from dataclasses import dataclass, field

from sluice import storage
from sluice.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from sluice.ids import is_image_name, safe_file_name
from sluice.v1 import staging_pb2
from sluice_staging.batches import MAX_FILE_BYTES, USER_TYPES, require_live
from sluice_staging.repository import BatchRow, Repository

log = logging.getLogger(__name__)

_NAME_CLASH = (FileExistsError, NotADirectoryError, IsADirectoryError)
_CLASH_REASON = "name clash: a file and a folder of the batch would share a name"


def content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _not_an_image(name: str) -> str:
    extension = posixpath.splitext(name)[1].lower()
    if not extension:
        return "not an image: files without an extension are not staged"
    return f"not an image: {extension} files are not staged"


def _size_text(size: int) -> str:
    mib = 1024 * 1024
    return f"{size // mib} MiB" if size >= mib and size % mib == 0 else f"{size} bytes"


@dataclass
class _File:
    """One file being received: its name as sent, where it goes, and why it is refused."""

    sent_name: str
    name: str = ""
    reason: str = ""
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


@dataclass
class UploadResult:
    batch_id: str
    summary: staging_pb2.UploadSummary


class Uploader:
    """Receives one UploadFiles stream for a workspace."""

    def __init__(
        self,
        repository: Repository,
        store: storage.ObjectStore,
        part_size: int,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self._repository = repository
        self._store = store
        self._part_size = part_size
        self._max_file_bytes = max_file_bytes

    async def receive(self, workspace: str, chunks: AsyncIterable[staging_pb2.UploadChunk]) -> UploadResult:
        summary = staging_pb2.UploadSummary()
        batch: BatchRow | None = None
        current: _File | None = None
        async for chunk in chunks:
            if batch is None:
                batch = await self._open_batch(workspace, chunk.batch_id)
            elif chunk.batch_id and chunk.batch_id != batch.batch_id:
                raise InvalidArgument(
                    f"one upload stream writes to one batch: got {chunk.batch_id!r} after {batch.batch_id!r}"
                )
            if current is not None and chunk.file_name and chunk.file_name != current.sent_name:
                self._reject(summary, current.sent_name, "incomplete: its last chunk never came")
                current = None
            if current is None:
                current = self._start(chunk.file_name, batch)
            self._add(current, chunk.data)
            if chunk.last:
                await self._finish(batch, current, summary)
                current = None
        if current is not None:
            self._reject(summary, current.sent_name, "incomplete: its last chunk never came")
        return UploadResult(batch.batch_id if batch else "", summary)

    async def _open_batch(self, workspace: str, batch_id: str) -> BatchRow:
        if not batch_id:
            raise InvalidArgument("the first upload chunk must name its batch (batch_id)")
        batch = require_live(
            await self._repository.get_batch(workspace, batch_id),
            batch_id,
            hint="; create it first",
        )
        if batch.type not in USER_TYPES:
            raise FailedPrecondition(
                f"batch {batch_id!r} holds {batch.type} written by a job; upload to an images or videos batch"
            )
        return batch

    def _start(self, sent_name: str, batch: BatchRow) -> _File:
        file = _File(sent_name)
        try:
            file.name = safe_file_name(sent_name)
        except InvalidArgument as error:
            file.reason = error.message
            return file
        if batch.type == "images" and not is_image_name(file.name):
            file.reason = _not_an_image(file.name)
        return file

    def _add(self, file: _File, data: bytes) -> None:
        if file.reason or not data:
            return
        file.size += len(data)
        if file.size > self._max_file_bytes:
            file.reason = f"too large: files over {_size_text(self._max_file_bytes)} are not staged"
            file.chunks.clear()
            return
        file.chunks.append(data)

    @staticmethod
    def _reject(summary: staging_pb2.UploadSummary, name: str, reason: str) -> None:
        summary.rejected.append(staging_pb2.RejectedFile(file_name=name, reason=reason))

    async def _finish(self, batch: BatchRow, file: _File, summary: staging_pb2.UploadSummary) -> None:
        if file.reason:
            self._reject(summary, file.sent_name, file.reason)
            return
        if await self._repository.name_clash(batch.workspace, batch.batch_id, file.name):
            self._reject(summary, file.sent_name, _CLASH_REASON)
            return
        data = b"".join(file.chunks)
        file.chunks.clear()
        url = self._store.batch_url(batch.workspace, batch.batch_id)
        try:
            await asyncio.to_thread(storage.write_bytes, url, file.name, data)
        except _NAME_CLASH:
            self._reject(summary, file.sent_name, _CLASH_REASON)
            return
        except OSError as error:
            log.exception("writing %r under %s failed", file.name, url)
            raise Unavailable(
                f"the object store could not store {file.name!r}; try the upload again"
            ) from error
        part = await self._repository.put_object(
            batch.workspace,
            batch.batch_id,
            file.name,
            len(data),
            content_type(file.name),
            self._part_size,
        )
        if part is None:
            raise NotFound(f"batch {batch.batch_id!r} was deleted during the upload")
        summary.files_stored += 1
        summary.bytes_stored += len(data)
