"""Uploading a folder of images or videos into a batch: many files per stream, several streams
at once, resumable, with progress."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tqdm import tqdm

from sluice.ids import is_image_name, is_reserved_name
from sluice.upload_streams import CHUNK_BYTES, UPLOAD_STREAMS, file_chunks, files_per_stream, stream_groups
from sluice.v1 import staging_pb2, staging_pb2_grpc

if TYPE_CHECKING:
    import grpc

T = TypeVar("T")
Advance = Callable[[int], None]
"""advance(bytes read): moves the progress bar on (from any thread)."""


@dataclass
class UploadPlan:
    to_upload: list[tuple[str, Path, int]] = field(default_factory=list)
    already_staged: int = 0
    not_accepted: list[str] = field(default_factory=list)
    """Files the batch does not take (not an image in an images batch, say): never sent."""
    reserved: list[str] = field(default_factory=list)
    """Files under `.sluice/`, which holds Sluice's own objects in every batch: never sent."""


def local_files(images_dir: Path) -> list[tuple[str, Path]]:
    """Every file under `images_dir` (recursive) with its name in the batch, in path order."""
    return [
        (path.relative_to(images_dir).as_posix(), path)
        for path in sorted(p for p in images_dir.rglob("*") if p.is_file())
    ]


def plan_upload(
    files: Sequence[tuple[str, Path]], staged: dict[str, int], accepts: Callable[[str], bool] = is_image_name
) -> UploadPlan:
    """Which of `files` (from `local_files`) still need uploading (name and size not staged);
    `accepts` says which names the batch takes."""
    plan = UploadPlan()
    for name, path in files:
        if is_reserved_name(name):
            plan.reserved.append(name)
            continue
        if not accepts(name):
            plan.not_accepted.append(name)
            continue
        size = path.stat().st_size
        if staged.get(name) == size:
            plan.already_staged += 1
        else:
            plan.to_upload.append((name, path, size))
    return plan


def _file_pieces(path: Path, advance: Advance) -> Iterator[bytes]:
    with path.open("rb") as f:
        while data := f.read(CHUNK_BYTES):
            advance(len(data))
            yield data


def _chunks(
    batch_id: str, files: list[tuple[str, Path, int]], advance: Advance
) -> Iterator[staging_pb2.UploadChunk]:
    for name, path, _ in files:
        yield from file_chunks(batch_id, name, _file_pieces(path, advance))


def upload(
    stub: staging_pb2_grpc.StagingServiceStub,
    metadata: Sequence[tuple[str, str]],
    batch_id: str,
    files: list[tuple[str, Path, int]],
    streams: int = UPLOAD_STREAMS,
) -> tuple[int, list[staging_pb2.RejectedFile]]:
    """Upload `files` over up to `streams` UploadFiles streams at once; returns how many were
    stored and the ones the server refused, in the order of `files`."""
    streams = max(1, streams)
    groups = list(stream_groups(files, lambda file: file[2], files_per_stream(len(files), streams)))
    total = sum(size for _, _, size in files)
    lock = threading.Lock()
    with tqdm(
        total=total, unit="B", unit_scale=True, desc="uploading", leave=False, disable=None
    ) as progress:

        def advance(read: int) -> None:  # called from gRPC's threads, one per stream
            with lock:
                progress.update(read)

        def start(group: list[tuple[str, Path, int]]) -> grpc.Future:
            return stub.UploadFiles.future(_chunks(batch_id, group, advance), metadata=metadata)

        summaries = _send_streams(groups, start, streams)
    stored = sum(summary.files_stored for summary in summaries)
    return stored, [item for summary in summaries for item in summary.rejected]


def _send_streams(
    groups: Sequence[T], start: Callable[[T], grpc.Future], streams: int
) -> list[staging_pb2.UploadSummary]:
    """One stream per group, started by `start` (an UploadFiles future), at most `streams` at a
    time; their summaries in order. The first failed stream raises its RpcError, and every
    stream still running is cancelled (so is every stream on Ctrl-C)."""
    finished: queue.Queue[int] = queue.Queue()
    running: dict[int, grpc.Future] = {}
    summaries = [staging_pb2.UploadSummary() for _ in groups]
    waiting = iter(range(len(groups)))

    def start_next() -> None:
        index = next(waiting, None)
        if index is not None:
            call = start(groups[index])
            running[index] = call
            call.add_done_callback(lambda _call, index=index: finished.put(index))

    try:
        for _ in range(streams):
            start_next()
        while running:
            index = finished.get()
            summaries[index] = running.pop(index).result()
            start_next()
    finally:
        for call in running.values():
            call.cancel()
    return summaries


def staged_objects(
    stub: staging_pb2_grpc.StagingServiceStub, metadata: Sequence[tuple[str, str]], batch_id: str
) -> list[staging_pb2.BatchObject]:
    """Every object of a batch, page by page."""
    objects: list[staging_pb2.BatchObject] = []
    token = ""
    while True:
        page = stub.ListBatchContent(
            staging_pb2.ListBatchContentRequest(
                batch_id=batch_id, page_size=10000, page_token=token, all_parts=True
            ),
            metadata=metadata,
        )
        objects.extend(page.objects)
        token = page.next_page_token
        if not token:
            return objects
