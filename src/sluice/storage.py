"""The object store: one fsspec URL (file://... by default; s3://, gs://, az:// through fsspec).

Objects of a batch live under `<store>/<workspace>/<batch id>/<object name>`, registered models
under `<store>/<workspace>/.models/<model id>/`. Writes on a local store go to a temporary name
first and are renamed into place; an object store publishes an upload whole when it completes. So
a reader never sees half an object, and a task that runs twice overwrites its own output.

Only folder URLs (the store's URL joined with workspaces, ids and model ids) are parsed as URLs.
An object's name is a user's: fsspec would read `::` in a URL as a chain of filesystems and its
glob-expanding methods would read `*`, `?` and `[x]` as patterns. So a name is joined onto the
folder's plain path here, and only single-object methods of the filesystem are called with it.
"""

from __future__ import annotations

import os
import posixpath
import re
import secrets
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

_TEMPORARY = re.compile(r"\.tmp-[0-9a-f]{8}$")


@dataclass(frozen=True)
class ObjectStore:
    url: str

    def batch_url(self, workspace: str, batch_id: str) -> str:
        return posixpath.join(self.url.rstrip("/"), workspace, batch_id)

    def model_url(self, workspace: str, model_id: str) -> str:
        """Where a registered model's files live: `<store>/<workspace>/.models/<model id>`.

        Batch ids never start with '.', so this never meets a batch.
        """
        return posixpath.join(self.url.rstrip("/"), workspace, ".models", model_id)


def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem of a folder URL and the path inside it (never a URL with a name)."""
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def join(url: str, part: str) -> str:
    """A folder URL under `url` (`part` made of ids); object names go through `object_path`."""
    return posixpath.join(url.rstrip("/"), part)


def object_path(folder_url: str, name: str) -> tuple[AbstractFileSystem, str]:
    """The filesystem of `folder_url` and the plain path of the object `name` inside it."""
    fs, root = filesystem(folder_url)
    return fs, f"{root.rstrip('/')}/{name}"


def write_bytes(folder_url: str, name: str, data: bytes) -> None:
    """Write the object `name` under `folder_url` whole (see the module's docstring)."""
    fs, path = object_path(folder_url, name)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    _write_whole(fs, path, data)


def write_many(folder_url: str, objects: Sequence[tuple[str, bytes]]) -> Iterator[OSError | None]:
    """Write each (name, data) under `folder_url` whole, as `write_bytes` does, resolving the
    filesystem once and making each folder once (for many small files that halves the cost).
    Yields, per object in order, None or the OSError its write raised; the caller decides
    whether to go on."""
    fs, root = filesystem(folder_url)
    made: set[str] = set()
    for name, data in objects:
        path = f"{root.rstrip('/')}/{name}"
        try:
            folder = posixpath.dirname(path)
            if folder not in made:
                fs.makedirs(folder, exist_ok=True)
                made.add(folder)
            _write_whole(fs, path, data)
        except OSError as error:
            yield error
            continue
        yield None


def _write_whole(fs: AbstractFileSystem, path: str, data: bytes) -> None:
    if not isinstance(fs, LocalFileSystem):
        fs.pipe_file(path, data)
        return
    tmp = f"{path}.tmp-{secrets.token_hex(4)}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def write_file(folder_url: str, name: str, local_path: str | Path) -> None:
    """Copy the local file `local_path` to the object `name` under `folder_url` whole (as
    `write_bytes` does: a temporary name renamed into place on a local store; one upload that the
    store publishes when it completes elsewhere), without reading it into memory."""
    fs, path = object_path(folder_url, name)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    if not isinstance(fs, LocalFileSystem):
        fs.put_file(os.fspath(local_path), path)
        return
    tmp = f"{path}.tmp-{secrets.token_hex(4)}"
    try:
        shutil.copyfile(local_path, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def read_bytes(folder_url: str, name: str) -> bytes:
    fs, path = object_path(folder_url, name)
    data: bytes = fs.cat_file(path)
    return data


def read_many(folder_url: str, names: Sequence[str]) -> Iterator[bytes | FileNotFoundError]:
    """Read each named object under `folder_url`, resolving the filesystem once (for many small
    files that is most of the cost). Yields, per name in order, its bytes, or the
    FileNotFoundError of a missing object; any other OSError is raised."""
    fs, root = filesystem(folder_url)
    base = root.rstrip("/")
    local = isinstance(fs, LocalFileSystem)
    for name in names:
        path = f"{base}/{name}"
        try:
            if local:
                with open(path, "rb") as f:
                    data: bytes = f.read()
            else:
                data = fs.cat_file(path)
        except FileNotFoundError as error:
            yield error
            continue
        yield data


def remove_object(folder_url: str, name: str) -> None:
    fs, path = object_path(folder_url, name)
    fs.rm_file(path)


def remove_folder(url: str) -> int:
    """Delete every object under the folder `url` (temporaries and `.sluice/` files too), then the
    folder itself; return how many objects were deleted. A missing folder or object is no error,
    so a deletion cut short can simply run again."""
    fs, root = filesystem(url)
    if not fs.exists(root):
        return 0
    # find() walks the folder; its paths are removed one by one (no glob-expanding method).
    paths = [p for p in fs.find(root) if p.startswith(root.rstrip("/") + "/")]
    for path in paths:
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            continue
    if isinstance(fs, LocalFileSystem):
        shutil.rmtree(root, ignore_errors=True)  # the folders left empty
    return len(paths)


def list_objects(url: str) -> dict[str, int]:
    """Every object under `url`, by name relative to it, with its size (temporaries skipped)."""
    fs, root = filesystem(url)
    if not fs.exists(root):
        return {}
    found = fs.find(root, detail=True)
    prefix = root.rstrip("/") + "/"
    return {
        path[len(prefix) :]: int(info.get("size") or 0)
        for path, info in found.items()
        if path.startswith(prefix) and not _TEMPORARY.search(path)
    }
