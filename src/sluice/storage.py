"""The object store: one fsspec URL (file://... by default; s3://, gs://, az:// through fsspec).

Objects of a batch live under `<store>/<workspace>/<batch id>/<object name>`, registered models
under `<store>/<workspace>/.models/<model id>/`. Writes go to a temporary name first and are
moved into place, so a reader never sees half an object and a task that runs twice overwrites its
own output.
"""

from __future__ import annotations

import posixpath
import secrets
from dataclasses import dataclass

import fsspec
from fsspec import AbstractFileSystem


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
    """The fsspec filesystem for `url` and the path inside it."""
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def join(url: str, name: str) -> str:
    return posixpath.join(url.rstrip("/"), name)


def write_bytes(url: str, data: bytes) -> None:
    """Write an object atomically (temporary name, then move)."""
    fs, path = filesystem(url)
    parent = posixpath.dirname(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{secrets.token_hex(4)}"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)


def read_bytes(url: str) -> bytes:
    fs, path = filesystem(url)
    with fs.open(path, "rb") as f:
        data: bytes = f.read()
    return data


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
        if path.startswith(prefix) and ".tmp-" not in posixpath.basename(path)
    }
