"""Exporting a batch to a local folder: resumable downloads, then the export archives unpacked."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from sluice.errors import InvalidArgument
from sluice.ids import safe_file_name
from sluice.v1 import staging_pb2, staging_pb2_grpc

UNPACKED_MARKER = ".sluice-unpacked"


def local_path(target: Path, name: str) -> Path:
    """Where object `name` lands inside `target`; refuses names that would leave it."""
    path = (target / safe_file_name(name)).resolve()
    if not path.is_relative_to(target.resolve()):
        raise InvalidArgument(f"object name {name!r} would be written outside {target}")
    return path


def download(
    stub: staging_pb2_grpc.StagingServiceStub,
    metadata: Sequence[tuple[str, str]],
    batch_id: str,
    objects: Sequence[staging_pb2.BatchObject],
    target: Path,
) -> int:
    """Download `objects` into `target` (each via a temporary file); returns how many."""
    if not objects:
        return 0
    total = sum(o.size_bytes for o in objects)
    request = staging_pb2.DownloadObjectsRequest(batch_id=batch_id, names=[o.name for o in objects])
    done = 0
    with tqdm(
        total=total, unit="B", unit_scale=True, desc="downloading", leave=False, disable=None
    ) as progress:
        out = None
        tmp: Path | None = None
        for chunk in stub.DownloadObjects(request, metadata=metadata):
            if out is None:
                path = local_path(target, chunk.name)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".part")
                out = tmp.open("wb")
            out.write(chunk.data)
            progress.update(len(chunk.data))
            if chunk.last:
                out.close()
                assert tmp is not None
                os.replace(tmp, local_path(target, chunk.name))
                out, tmp = None, None
                done += 1
    return done


def unpack_archives(target: Path) -> list[str]:
    """Unpack every .tar.gz in `target` not unpacked before (safely); returns their names."""
    marker = target / UNPACKED_MARKER
    seen = set(marker.read_text().split("\n")) if marker.exists() else set()
    unpacked = []
    for archive in sorted(target.rglob("*.tar.gz")):
        key = f"{archive.relative_to(target).as_posix()}:{archive.stat().st_size}"
        if key in seen:
            continue
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(archive.parent, filter="data")
        seen.add(key)
        unpacked.append(archive.name)
    marker.write_text("\n".join(sorted(s for s in seen if s)))
    return unpacked
