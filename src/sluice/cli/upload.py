"""Uploading a folder of images or videos into a batch: many files per stream, resumable, with
progress."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from sluice.ids import is_image_name, is_reserved_name
from sluice.upload_streams import CHUNK_BYTES, file_chunks, stream_groups
from sluice.v1 import staging_pb2, staging_pb2_grpc


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


def _file_pieces(path: Path, progress: tqdm) -> Iterator[bytes]:
    with path.open("rb") as f:
        while data := f.read(CHUNK_BYTES):
            progress.update(len(data))
            yield data


def _chunks(
    batch_id: str, files: list[tuple[str, Path, int]], progress: tqdm
) -> Iterator[staging_pb2.UploadChunk]:
    for name, path, _ in files:
        yield from file_chunks(batch_id, name, _file_pieces(path, progress))


def upload(
    stub: staging_pb2_grpc.StagingServiceStub,
    metadata: Sequence[tuple[str, str]],
    batch_id: str,
    files: list[tuple[str, Path, int]],
) -> tuple[int, list[staging_pb2.RejectedFile]]:
    """Upload `files`; returns how many were stored and the ones the server refused."""
    stored = 0
    rejected: list[staging_pb2.RejectedFile] = []
    total = sum(size for _, _, size in files)
    with tqdm(
        total=total, unit="B", unit_scale=True, desc="uploading", leave=False, disable=None
    ) as progress:
        for group in stream_groups(files, lambda file: file[2]):
            summary = stub.UploadFiles(_chunks(batch_id, group, progress), metadata=metadata)
            stored += summary.files_stored
            rejected.extend(summary.rejected)
    return stored, rejected


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
