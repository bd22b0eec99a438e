"""Uploading a folder picked in the browser (st.file_uploader's files) into a batch, resumable
like `sluice data-staging create-batch-of-...`.

The batch is created when new (an existing one of the same type is reused), what it already
holds is listed page by page, and a file whose name and size are already staged is skipped, so
running the same upload again after a broken connection sends only what is missing. Names the
batch would refuse (reserved `.sluice/`, the wrong kind, unsafe paths) are refused here, before
any byte is sent; the rest goes in groups of files per UploadFiles stream, 1 MiB chunks, as the
CLI does. Nothing here draws: `progress` is a callback (the page passes st.progress's update).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sluice.errors import SluiceError
from sluice.ids import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    is_image_name,
    is_reserved_name,
    is_video_name,
    reserved_name_reason,
    safe_file_name,
    validate_id,
)
from sluice.upload_streams import byte_pieces, file_chunks, stream_groups
from sluice.v1 import common_pb2, staging_pb2
from sluice_dashboard.client import STAGING, Services

LIST_PAGE = 10000
LIST_TIMEOUT_S = 30.0
MIN_UPLOAD_TIMEOUT_S = 60.0
SLOWEST_BYTES_PER_S = 1024 * 1024  # a group's deadline allows at least this rate

KINDS = {"images": common_pb2.BATCH_TYPE_IMAGES, "videos": common_pb2.BATCH_TYPE_VIDEOS}
_ACCEPTS: dict[str, tuple[Callable[[str], bool], frozenset[str]]] = {
    "images": (is_image_name, IMAGE_EXTENSIONS),
    "videos": (is_video_name, VIDEO_EXTENSIONS),
}

Progress = Callable[[int, int], None]
"""progress(bytes_sent, bytes_total)."""


class PickedFile(Protocol):
    """What st.file_uploader gives (UploadedFile): a name, a size and the bytes."""

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int: ...

    def getvalue(self) -> bytes: ...


@dataclass
class UploadReport:
    """What an upload did: counts for the success line, and each refused file with why."""

    stored: int = 0
    bytes_stored: int = 0
    already_staged: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        stored = "1 file stored" if self.stored == 1 else f"{self.stored} files stored"
        return f"{stored}, {self.already_staged} already staged, {len(self.refused)} refused"


@dataclass
class UploadPlan:
    to_send: list[tuple[str, PickedFile]] = field(default_factory=list)
    already_staged: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)


def _clean(name: str) -> str:
    """A browser's path with POSIX separators and no leading './' or '/'."""
    name = name.replace("\\", "/")
    while name.startswith("./") or name.startswith("/"):
        name = name[2:] if name.startswith("./") else name[1:]
    return name


def batch_names(names: Sequence[str]) -> list[str]:
    """Each picked file's name in the batch: its path below the chosen folder.

    In directory mode Streamlit 1.67 names a file by the browser's webkitRelativePath, which
    starts with the chosen folder ("photos/a.jpg", "photos/sub/b.jpg"); a dropped folder may
    come as "/photos/a.jpg" or "./a.jpg". When every name starts with the same folder, that
    folder is dropped, so the batch holds "a.jpg" and "sub/b.jpg" as the CLI would.
    """
    cleaned = [_clean(n) for n in names]
    firsts = {n.split("/", 1)[0] for n in cleaned}
    if cleaned and len(firsts) == 1 and all("/" in n for n in cleaned):
        return [n.split("/", 1)[1] for n in cleaned]
    return cleaned


def _kind_reason(name: str, kind: str, extensions: frozenset[str]) -> str:
    noun = kind[:-1]
    article = "an" if noun == "image" else "a"
    shown = "/".join(sorted(extensions))
    return f"not {article} {noun}: a batch of {kind} takes {shown} files"


def plan_upload(files: Sequence[PickedFile], kind: str, staged: dict[str, int]) -> UploadPlan:
    """Which of `files` to send: not refused here, and not already staged with that size."""
    accepts, extensions = _ACCEPTS[kind]
    plan = UploadPlan()
    seen: set[str] = set()
    for name, file in zip(batch_names([f.name for f in files]), files, strict=True):
        try:
            name = safe_file_name(name)
        except SluiceError as error:
            plan.refused.append((name, error.message))
            continue
        if is_reserved_name(name):
            plan.refused.append((name, reserved_name_reason(name)))
        elif not accepts(name):
            plan.refused.append((name, _kind_reason(name, kind, extensions)))
        elif name in seen:
            plan.refused.append((name, "picked twice: only the first is sent"))
        elif staged.get(name) == file.size:
            seen.add(name)
            plan.already_staged += 1
        else:
            seen.add(name)
            plan.to_send.append((name, file))
    return plan


def staged_sizes(svc: Services, batch_id: str) -> dict[str, int]:
    """Name -> size of every object the batch holds, all parts, page by page."""
    sizes: dict[str, int] = {}
    token = ""
    while True:
        page = svc.call(
            STAGING,
            "ListBatchContent",
            staging_pb2.ListBatchContentRequest(
                batch_id=batch_id, page_size=LIST_PAGE, page_token=token, all_parts=True
            ),
            timeout_s=LIST_TIMEOUT_S,
        )
        sizes.update((o.name, o.size_bytes) for o in page.objects)
        token = page.next_page_token
        if not token:
            return sizes


def _chunks(
    batch_id: str, group: list[tuple[str, PickedFile]], sent: Callable[[int], None]
) -> Iterator[staging_pb2.UploadChunk]:
    for name, file in group:
        for chunk in file_chunks(batch_id, name, byte_pieces(file.getvalue())):
            sent(len(chunk.data))
            yield chunk


def send(
    svc: Services, batch_id: str, files: list[tuple[str, PickedFile]], progress: Progress
) -> UploadReport:
    """Upload `files` (already planned) group by group; what the server stored and refused."""
    report = UploadReport()
    total = sum(f.size for _, f in files)
    done = 0

    def sent(count: int) -> None:
        nonlocal done
        done += count
        progress(done, total)

    for group in stream_groups(files, lambda file: file[1].size):
        group_bytes = sum(f.size for _, f in group)
        summary = svc.upload(
            STAGING,
            "UploadFiles",
            _chunks(batch_id, group, sent),
            timeout_s=max(MIN_UPLOAD_TIMEOUT_S, group_bytes / SLOWEST_BYTES_PER_S),
        )
        report.stored += summary.files_stored
        report.bytes_stored += summary.bytes_stored
        report.refused.extend((r.file_name, r.reason) for r in summary.rejected)
    return report


def upload_folder(
    svc: Services, batch_id: str, kind: str, files: Sequence[PickedFile], progress: Progress
) -> UploadReport:
    """Create the batch if new, then send what it lacks; raises ServiceError when a call fails
    and SluiceError (InvalidArgument) for a bad batch id."""
    batch_id = validate_id(batch_id.strip(), "batch id")
    svc.call(STAGING, "CreateBatch", staging_pb2.CreateBatchRequest(batch_id=batch_id, type=KINDS[kind]))
    plan = plan_upload(files, kind, staged_sizes(svc, batch_id))
    report = send(svc, batch_id, plan.to_send, progress) if plan.to_send else UploadReport()
    report.already_staged = plan.already_staged
    report.refused = plan.refused + report.refused
    progress(1, 1)
    return report
