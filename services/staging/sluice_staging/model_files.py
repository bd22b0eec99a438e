"""Putting a registered model's files in the object store: model.onnx, then spec.json."""

from __future__ import annotations

import posixpath
import secrets
from pathlib import Path

from sluice import storage
from sluice.models.spec import ModelSpec
from sluice.models.stored import MODEL_FILE, SPEC_FILE, stored_json


def model_file_url(store: storage.ObjectStore, workspace: str, model_id: str) -> str:
    return storage.join(store.model_url(workspace, model_id), MODEL_FILE)


def publish_model(
    store: storage.ObjectStore, workspace: str, spec: ModelSpec, local: Path, sha256: str, size: int
) -> None:
    """Copy `local` to the model's folder under a temporary name and move it into place; then
    write spec.json, so a reader that finds the new spec.json also finds the new bytes."""
    folder = store.model_url(workspace, spec.model_id)
    fs, path = storage.object_path(folder, MODEL_FILE)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    temporary = f"{path}.tmp-{secrets.token_hex(4)}"
    fs.put_file(str(local), temporary)
    fs.mv(temporary, path)
    storage.write_bytes(folder, SPEC_FILE, stored_json(spec, sha256, size).encode())
