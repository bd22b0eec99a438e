"""A registered model in the object store: `model.onnx` and `spec.json` in the model's folder.

`spec.json` holds the file's identity beside its spec, so a reader knows which bytes to expect::

    {"sha256": "<hex>", "size_bytes": 12345, "spec": {<the spec's JSON, see spec_json>}}

The registry writes `model.onnx` first and `spec.json` last (each atomically), so a reader that
finds bytes whose sha256 differs from `spec.json`'s has met a replacement in progress.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sluice.models.spec import ModelSpec
from sluice.models.spec_json import spec_from_dict, spec_to_dict

MAX_MODEL_BYTES = 2 * 1024 * 1024 * 1024
"""The largest ONNX file the registry takes."""
MODEL_FILE = "model.onnx"
SPEC_FILE = "spec.json"


@dataclass(frozen=True)
class StoredModel:
    spec: ModelSpec
    sha256: str
    size_bytes: int


def stored_json(spec: ModelSpec, sha256: str, size_bytes: int) -> str:
    return json.dumps({"sha256": sha256, "size_bytes": size_bytes, "spec": spec_to_dict(spec)}, indent=1)


def parse_stored(text: str | bytes, model_id: str, path: Path | str) -> StoredModel:
    """Read `spec.json`; the spec gets `path` (where the caller keeps the ONNX file)."""
    try:
        data = json.loads(text)
        sha256, size_bytes, spec = data["sha256"], data["size_bytes"], data["spec"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"the stored spec.json of model {model_id!r} is damaged: {error}") from None
    return StoredModel(spec_from_dict(spec, path, model_id), str(sha256), int(size_bytes))
