"""The streaming upload: chunks become files, files become objects of one batch.

A stream carries many files, each a run of chunks ending with `last=True`. A file that cannot be
staged (a bad or reserved name, not an image in an images batch, not a decodable video in a videos
batch, too large, cut short) is reported in the summary with its reason and skipped; the rest of
the stream carries on.

An image is held in memory until its last chunk. A video is spooled to a temporary file, probed
(in a thread) once it is whole, and only then copied to the object store with its frame index
beside it (`frame_index_name`); its row records what the probe found (a VideoInfo).

Received files are recorded in groups (`_Group`): every GROUP_FILES files, GROUP_BYTES of images
held, GROUP_SECONDS after the group's first file (checked as chunks arrive), and at the end of
the stream. A group's images are written to the store in one thread hop, then the whole group is
recorded in one transaction (Repository.put_objects), which also checks its name clashes. Bytes
always go to the store before their row is written, so every recorded object's bytes are there
even if the service stops mid-stream; the bytes of a file refused at recording (a name clash) are
taken back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import os
import posixpath
import tempfile
import time
from collections.abc import AsyncIterable, Callable, Sequence
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
from sluice_staging.repository import BatchRow, NewObject, Repository

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_NAME_CLASH = (FileExistsError, NotADirectoryError, IsADirectoryError)
_CLASH_REASON = "name clash: a file and a folder of the batch would share a name"

GROUP_FILES = 200
"""Files recorded in one transaction at most."""
GROUP_BYTES = 8 * 1024 * 1024
"""Image bytes a group holds in memory before it is written and recorded."""
GROUP_SECONDS = 0.25
"""How long a received file waits at most for its group (while chunks keep arriving)."""


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
    seq: int = 0
    """Its place in the stream: refusals are reported in stream order."""
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


@dataclass
class _Received:
    """A whole file that passed the checks, waiting in a group to be recorded; `data` holds an
    image's bytes until the group writes them (a video is in the store already)."""

    seq: int
    sent_name: str
    name: str
    size: int
    data: bytes | None = None
    video: bytes | None = None

    def stored_names(self) -> list[str]:
        """The store objects it made: the file, and a video's frame index."""
        return [self.name] + ([video_index_name(self.video)] if self.video is not None else [])


@dataclass
class _Tally:
    """What a stream did so far: files and bytes recorded, and each refusal by stream order."""

    files_stored: int = 0
    bytes_stored: int = 0
    rejected: list[tuple[int, str, str]] = field(default_factory=list)

    def reject(self, seq: int, name: str, reason: str) -> None:
        self.rejected.append((seq, name, reason))

    def summary(self) -> staging_pb2.UploadSummary:
        return staging_pb2.UploadSummary(
            files_stored=self.files_stored,
            bytes_stored=self.bytes_stored,
            rejected=[
                staging_pb2.RejectedFile(file_name=name, reason=reason)
                for _, name, reason in sorted(self.rejected, key=lambda r: r[0])
            ],
        )


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
        tally = _Tally()
        batch: BatchRow | None = None
        group: _Group | None = None
        current: _File | None = None
        seq = 0
        try:
            async for chunk in chunks:
                if batch is None:
                    batch = await self._open_batch(workspace, chunk.batch_id)
                    group = _Group(self._repository, self._store, batch, self._part_size, tally)
                elif chunk.batch_id and chunk.batch_id != batch.batch_id:
                    raise InvalidArgument(
                        f"one upload stream writes to one batch: got {chunk.batch_id!r} "
                        f"after {batch.batch_id!r}"
                    )
                assert group is not None
                if current is not None and chunk.file_name and chunk.file_name != current.sent_name:
                    tally.reject(current.seq, current.sent_name, "incomplete: its last chunk never came")
                    await self._discard(current)
                    current = None
                if current is None:
                    seq += 1
                    current = await self._start(chunk.file_name, batch, seq)
                await self._add(current, chunk.data)
                if chunk.last:
                    file, current = current, None
                    try:
                        await self._finish(batch, file, group, tally)
                    finally:
                        await self._discard(file)
                if group.due():
                    await group.record()
            if current is not None:
                tally.reject(current.seq, current.sent_name, "incomplete: its last chunk never came")
            if group is not None:
                await group.record()
        except BaseException:
            if group is not None:
                # The files that were whole before the error are recorded all the same.
                await group.record_after_error()
            raise
        finally:
            if current is not None:
                await self._discard(current)
        return UploadResult(batch.batch_id if batch else "", tally.summary())

    @staticmethod
    async def _discard(file: _File) -> None:
        """Drop a file's temporary spool (a video's), if it has one."""
        if file.spool is not None or file.spool_path is not None:
            await asyncio.to_thread(_drop_spool, file)

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

    async def _start(self, sent_name: str, batch: BatchRow, seq: int) -> _File:
        file = _File(sent_name, seq)
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

    async def _finish(self, batch: BatchRow, file: _File, group: _Group, tally: _Tally) -> None:
        """Put a whole file in the group, or refuse it with its reason."""
        if file.reason:
            tally.reject(file.seq, file.sent_name, file.reason)
            return
        if file.spool_path is None:
            data = b"".join(file.chunks)
            file.chunks.clear()
            group.add(_Received(file.seq, file.sent_name, file.name, file.size, data=data))
            return
        # The images before it are recorded first, so that a clash between them and this video
        # refuses the later file, as within a group of images. A video is then checked for a
        # clash before its costly probe (and again when recorded).
        await group.record()
        if await self._repository.name_clash(batch.workspace, batch.batch_id, file.name):
            tally.reject(file.seq, file.sent_name, _CLASH_REASON)
            return
        url = self._store.batch_url(batch.workspace, batch.batch_id)
        stored = await self._store_video(url, file)
        if isinstance(stored, str):
            tally.reject(file.seq, file.sent_name, stored)
            return
        video = stored.SerializeToString()
        group.add(_Received(file.seq, file.sent_name, file.name, file.size, video=video))

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
            raise _unavailable(name) from error
        return True


def _unavailable(name: str) -> Unavailable:
    return Unavailable(f"the object store could not store {name!r}; try the upload again")


@dataclass
class _Written:
    """What `_write_images` did: the files that clash with a folder (or a file) of the store, and
    the error that stopped it with the file it failed on (those after it were not written)."""

    clashing: list[_Received] = field(default_factory=list)
    error: OSError | None = None
    failed_on: str = ""


def _write_images(url: str, files: Sequence[_Received]) -> _Written:
    """Write the files' bytes in order (in a thread); each written one lets go of its bytes."""
    written = _Written()
    objects = [(file.name, file.data) for file in files if file.data is not None]
    assert len(objects) == len(files)
    for file, error in zip(files, storage.write_many(url, objects), strict=False):
        if isinstance(error, _NAME_CLASH):
            written.clashing.append(file)
            continue
        if error is not None:
            log.error("writing %r under %s failed: %s", file.name, url, error)
            written.error, written.failed_on = error, file.name
            return written
        file.data = None
    return written


def _remove_objects(url: str, names: Sequence[str]) -> None:
    for name in names:
        with contextlib.suppress(OSError):
            storage.remove_object(url, name)


class _Group:
    """The whole files of a stream not recorded yet, and how they are recorded."""

    def __init__(
        self,
        repository: Repository,
        store: storage.ObjectStore,
        batch: BatchRow,
        part_size: int,
        tally: _Tally,
    ) -> None:
        self._repository = repository
        self._batch = batch
        self._url = store.batch_url(batch.workspace, batch.batch_id)
        self._part_size = part_size
        self._tally = tally
        self._files: list[_Received] = []
        self._bytes = 0
        self._since = 0.0

    def add(self, file: _Received) -> None:
        if not self._files:
            self._since = time.monotonic()
        self._files.append(file)
        self._bytes += len(file.data or b"")

    def due(self) -> bool:
        """Whether the group is full, holds enough bytes, or has waited long enough."""
        if not self._files:
            return False
        if len(self._files) >= GROUP_FILES or self._bytes >= GROUP_BYTES:
            return True
        return time.monotonic() - self._since >= GROUP_SECONDS

    def _take(self) -> list[_Received]:
        files, self._files, self._bytes = self._files, [], 0
        return files

    async def record(self) -> None:
        """Write the group's images, then record the group (one transaction)."""
        files = self._take()
        if not files:
            return
        images = [f for f in files if f.data is not None]
        written = await asyncio.to_thread(_write_images, self._url, images) if images else _Written()
        for file in written.clashing:
            self._tally.reject(file.seq, file.sent_name, _CLASH_REASON)
        # Recorded: the videos and the images written (not those clashing or never reached).
        await self._put([f for f in files if f.data is None])
        if written.error is not None:
            raise _unavailable(written.failed_on) from written.error

    async def record_after_error(self) -> None:
        """Record what is whole after the stream failed (a bad chunk, a client gone), or take back
        what was written; never raises over the error that ended the stream."""
        try:
            await asyncio.wait_for(asyncio.shield(self.record()), timeout=10.0)
        except Exception:
            log.exception("recording the files received before a failed upload stream failed")

    async def _put(self, files: list[_Received]) -> None:
        """Record written files; take back the bytes of those refused, or of all when the batch
        went away meanwhile."""
        if not files:
            return
        batch = self._batch
        objects = [NewObject(f.name, f.size, content_type(f.name), f.video) for f in files]
        recorded = await self._repository.put_objects(
            batch.workspace, batch.batch_id, objects, self._part_size
        )
        refused = files if recorded is None else [f for f in files if f.name in recorded.clashing]
        if refused:
            names = [name for f in refused for name in f.stored_names()]
            await asyncio.to_thread(_remove_objects, self._url, names)
        if recorded is None:  # the expiry sweep purged it meanwhile
            purged = await self._repository.get_batch(batch.workspace, batch.batch_id)
            if purged is not None:
                raise FailedPrecondition(expired_message(purged))
            raise NotFound(f"batch {batch.batch_id!r} was deleted during the upload")
        for file in files:
            if file.name in recorded.clashing:
                self._tally.reject(file.seq, file.sent_name, _CLASH_REASON)
            else:
                self._tally.files_stored += 1
                self._tally.bytes_stored += file.size
