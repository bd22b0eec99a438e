"""The worker's catalog: built-in models, else models registered in the caller's workspace.

A registered model is read from the object store (`spec.json`, then `model.onnx`) and kept in a
local cache folder by sha256, so each version of a file is downloaded once per machine and the
ONNX Runtime session of an unchanged model survives re-registration of others.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from dataclasses import replace
from pathlib import Path

from sluice import storage
from sluice.errors import NotFound, Unavailable
from sluice.models.model_ids import validate_model_id
from sluice.models.registry import get_model, is_known
from sluice.models.spec import ModelSpec
from sluice.models.stored import MODEL_FILE, SPEC_FILE, StoredModel, parse_stored

ATTEMPTS = 3
_READ_BYTES = 1024 * 1024


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


class StoreCatalog:
    """Specs by model id for one workspace; a catalog keeps the version it first saw of a model.

    `spec(model_id)` returns a spec whose `path` is the local copy of the model's file.
    """

    def __init__(self, workspace: str, store_url: str, cache_dir: Path | str) -> None:
        self._workspace = workspace
        self._store = storage.ObjectStore(store_url)
        self._cache = Path(cache_dir)
        self._lock = threading.Lock()
        self._specs: dict[str, ModelSpec] = {}

    def spec(self, model_id: str) -> ModelSpec:
        if is_known(model_id):
            return get_model(model_id)
        with self._lock:
            found = self._specs.get(model_id)
            if found is None:
                found = self._fetch(validate_model_id(model_id))
                self._specs[model_id] = found
            return found

    def _read_stored(self, model_id: str, folder: str) -> StoredModel:
        try:
            text = storage.read_bytes(folder, SPEC_FILE)
        except FileNotFoundError:
            raise NotFound(f"unknown model '{model_id}'") from None
        return parse_stored(text, model_id, self._cache)

    def _fetch(self, model_id: str) -> ModelSpec:
        folder = self._store.model_url(self._workspace, model_id)
        for _ in range(ATTEMPTS):
            stored = self._read_stored(model_id, folder)
            local = self._cache / stored.sha256 / MODEL_FILE
            if local.is_file() or self._download(folder, local, stored.sha256):
                return replace(stored.spec, path=local)
        raise Unavailable(f"model '{model_id}' kept changing while it was read; try again")

    @staticmethod
    def _download(folder: str, local: Path, sha256: str) -> bool:
        """Copy the model file under `folder` to `local` when its bytes have `sha256`; False when
        they do not (replaced)."""
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(f"{MODEL_FILE}.part-{secrets.token_hex(4)}")
        fs, path = storage.object_path(folder, MODEL_FILE)
        try:
            fs.get_file(path, str(partial))
            if _sha256(partial) != sha256:
                return False
            os.replace(partial, local)
            return True
        except FileNotFoundError:
            return False
        finally:
            partial.unlink(missing_ok=True)
