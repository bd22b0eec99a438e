"""Where FFmpeg reads a task's video from: the object itself on a local store, else a copy."""

from __future__ import annotations

import shutil
from pathlib import Path

from fsspec.implementations.local import LocalFileSystem

from sluice import storage

COPY_CHUNK_BYTES = 8 * 1024 * 1024


def local_video(folder_url: str, name: str, scratch: Path) -> Path:
    """A local path of the video `name` under `folder_url`, copying it into `scratch` when the
    store is not a local folder. Raises FileNotFoundError when the object is gone."""
    fs, path = storage.object_path(folder_url, name)
    if isinstance(fs, LocalFileSystem):
        if not Path(path).is_file():
            raise FileNotFoundError(f"video {name!r} is not in the object store")
        return Path(path)
    target = scratch / "input-video"
    with fs.open(path, "rb") as source, open(target, "wb") as copy:
        shutil.copyfileobj(source, copy, COPY_CHUNK_BYTES)
    return target
