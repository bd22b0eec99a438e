"""The streaming upload: chunks become files, files become objects of one batch.

A stream carries many files, each a run of chunks ending with `last=True`. A file that cannot be
staged (a bad or reserved name, not an image in an images batch, not a decodable video in a videos
batch, too large, cut short) is reported in the summary with its reason and skipped; the rest of
the stream carries on.

An image is held in memory until its last chunk. A video is spooled to a temporary file, probed
(in a thread) once it is whole, and only then copied to the object store with its frame index
beside it (`frame_index_name`); its row records what the probe found (a VideoInfo).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import os
import posixpath
import tempfile
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

from sluice import storage
from sluice.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from sluice.ids import (
    is_image_name,
    is_reserved_name,
    is_video_name,
    reserved_name_reason,
    safe_file_name,
)
from sluice.v1 import staging_pb2
from sluice.v1.common_pb2 import VideoInfo
from sluice.video.frame_index import frame_index_name
from sluice.video.probe import NotAVideo, VideoProbe, probe_video
from sluice_staging.batches import (
    MAX_FILE_BYTES,
    MAX_VIDEO_BYTES,
    USER_TYPES,
    expired_message,
    require_live,
)
from sluice_staging.repository import BatchRow, Repository

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_NAME_CLASH = (FileExistsError, NotADirectoryError, IsADirectoryError)
_CLASH_REASON = "name clash: a file and a folder of the batch would share a name"


def video_index_name(video: bytes) -> str:
    """The frame index object named by a serialized VideoInfo."""
    return VideoInfo.FromString(video).frame_index_name


def content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _not_an_image(name: str) -> str:
    extension = posixpath.splitext(name)[1].lower()
    if not extension:
        return "not an image: files without an extension are not staged"
    return f"not an image: {extension} files are not staged"


def _not_a_video_name(name: str) -> str:
    extension = posixpath.splitext(name)[1].lower()
    if not extension:
        return "not a video: files without an extension are not staged"
    return f"not a video: {extension} files are not staged"


def _size_text(size: int) -> str:
    gib, mib = 1024**3, 1024**2
    if size >= gib and size % gib == 0:
        return f"{size // gib} GiB"
    return f"{size // mib} MiB" if size >= mib and size % mib == 0 else f"{size} bytes"


@dataclass
class _File:
    """One file being received: its name as sent, where it goes, and why it is refused.

    An image's bytes collect in `chunks`; a video's go to the temporary file `spool_path`.
    """

    sent_name: str
    name: str = ""
    reason: str = ""
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    spool: BinaryIO | None = None
    spool_path: Path | None = None


def _open_spool(folder: Path | None) -> tuple[BinaryIO, Path]:
    descriptor, path = tempfile.mkstemp(prefix="sluice-upload-", suffix=".part", dir=folder)
    return os.fdopen(descriptor, "wb"), Path(path)


def _close_spool(file: _File) -> None:
    if file.spool is not None:
        file.spool.close()
        file.spool = None


def _drop_spool(file: _File) -> None:
    _close_spool(file)
    if file.spool_path is not None:
        with contextlib.suppress(FileNotFoundError):
            file.spool_path.unlink()
        file.spool_path = None


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
        max_video_bytes: int = MAX_VIDEO_BYTES,
        spool_dir: Path | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repository = repository
        self._clock = clock
        self._store = store
        self._part_size = part_size
        self._max_file_bytes = max_file_bytes
        self._max_video_bytes = max_video_bytes
        self._spool_dir = spool_dir

    async def receive(self, workspace: str, chunks: AsyncIterable[staging_pb2.UploadChunk]) -> UploadResult:
        summary = staging_pb2.UploadSummary()
        batch: BatchRow | None = None
        current: _File | None = None
        try:
            async for chunk in chunks:
                if batch is None:
                    batch = await self._open_batch(workspace, chunk.batch_id)
                elif chunk.batch_id and chunk.batch_id != batch.batch_id:
                    raise InvalidArgument(
                        f"one upload stream writes to one batch: got {chunk.batch_id!r} "
                        f"after {batch.batch_id!r}"
                    )
                if current is not None and chunk.file_name and chunk.file_name != current.sent_name:
                    self._reject(summary, current.sent_name, "incomplete: its last chunk never came")
                    await asyncio.to_thread(_drop_spool, current)
                    current = None
                if current is None:
                    current = await self._start(chunk.file_name, batch)
                await self._add(current, chunk.data)
                if chunk.last:
                    file, current = current, None
                    try:
                        await self._finish(batch, file, summary)
                    finally:
                        await asyncio.to_thread(_drop_spool, file)
            if current is not None:
                self._reject(summary, current.sent_name, "incomplete: its last chunk never came")
        finally:
            if current is not None:
                await asyncio.to_thread(_drop_spool, current)
        return UploadResult(batch.batch_id if batch else "", summary)

    async def _open_batch(self, workspace: str, batch_id: str) -> BatchRow:
        if not batch_id:
            raise InvalidArgument("the first upload chunk must name its batch (batch_id)")
        batch = require_live(
            await self._repository.get_batch(workspace, batch_id),
            batch_id,
            hint="; create it first",
            now=self._clock(),
        )
        if batch.type not in USER_TYPES:
            raise FailedPrecondition(
                f"batch {batch_id!r} holds {batch.type} written by a job; upload to an images or videos batch"
            )
        return batch

    async def _start(self, sent_name: str, batch: BatchRow) -> _File:
        file = _File(sent_name)
        try:
            file.name = safe_file_name(sent_name)
        except InvalidArgument as error:
            file.reason = error.message
            return file
        if is_reserved_name(file.name):
            file.reason = reserved_name_reason(file.name)
        elif batch.type == "images" and not is_image_name(file.name):
            file.reason = _not_an_image(file.name)
        elif batch.type == "videos":
            if not is_video_name(file.name):
                file.reason = _not_a_video_name(file.name)
            else:
                file.spool, file.spool_path = await asyncio.to_thread(_open_spool, self._spool_dir)
        return file

    async def _add(self, file: _File, data: bytes) -> None:
        if file.reason or not data:
            return
        file.size += len(data)
        limit = self._max_video_bytes if file.spool_path is not None else self._max_file_bytes
        if file.size > limit:
            file.reason = f"too large: files over {_size_text(limit)} are not staged"
            file.chunks.clear()
            await asyncio.to_thread(_drop_spool, file)
            return
        if file.spool is not None:
            await asyncio.to_thread(file.spool.write, data)
        else:
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
        url = self._store.batch_url(batch.workspace, batch.batch_id)
        video: bytes | None = None
        if file.spool_path is not None:
            stored = await self._store_video(url, file)
            if isinstance(stored, str):
                self._reject(summary, file.sent_name, stored)
                return
            video = stored.SerializeToString()
        else:
            data = b"".join(file.chunks)
            file.chunks.clear()
            if not await self._write(url, file.name, storage.write_bytes, data):
                self._reject(summary, file.sent_name, _CLASH_REASON)
                return
        part = await self._repository.put_object(
            batch.workspace,
            batch.batch_id,
            file.name,
            file.size,
            content_type(file.name),
            self._part_size,
            video,
        )
        if part is None:  # the expiry sweep purged it meanwhile: take back what was written
            names = [file.name] + ([video_index_name(video)] if video is not None else [])
            for name in names:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(storage.remove_object, url, name)
            purged = await self._repository.get_batch(batch.workspace, batch.batch_id)
            if purged is not None:
                raise FailedPrecondition(expired_message(purged))
            raise NotFound(f"batch {batch.batch_id!r} was deleted during the upload")
        summary.files_stored += 1
        summary.bytes_stored += file.size

    async def _store_video(self, url: str, file: _File) -> VideoInfo | str:
        """Probe the spooled video, then store it and its frame index; its VideoInfo, or why not."""
        assert file.spool_path is not None
        await asyncio.to_thread(_close_spool, file)
        try:
            probe: VideoProbe = await asyncio.to_thread(probe_video, file.spool_path)
        except NotAVideo as error:
            return f"not a decodable video: {error}"
        except Exception as error:  # a probe that breaks must not end the whole stream
            log.exception("probing %r failed", file.name)
            return f"not a decodable video: probing failed ({type(error).__name__})"
        if not await self._write(url, file.name, storage.write_file, file.spool_path):
            return _CLASH_REASON
        info = VideoInfo()
        info.CopyFrom(probe.info)
        info.frame_index_name = frame_index_name(file.name)
        index = await asyncio.to_thread(probe.index.to_json_bytes)
        if not await self._write(url, info.frame_index_name, storage.write_bytes, index):
            raise Unavailable(f"the object store could not store the frame index of {file.name!r}")
        return info

    @staticmethod
    async def _write(url: str, name: str, write: Callable[[str, str, _T], None], source: _T) -> bool:
        """Write one object with `write` in a thread; False on a name clash with a folder."""
        try:
            await asyncio.to_thread(write, url, name, source)
        except _NAME_CLASH:
            return False
        except OSError as error:
            log.exception("writing %r under %s failed", name, url)
            raise Unavailable(f"the object store could not store {name!r}; try the upload again") from error
        return True
