"""The result records of a task: one JSON line per input image, in input order."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ImageRecord:
    """What happened to one input image.

    `outputs` maps each non-image workflow output to its JSON value; `image_outputs` maps each
    image output to the object name it was saved under (relative to the output batch).
    """

    image: str
    task_id: str
    error: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    image_outputs: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "task_id": self.task_id,
            "status": "ok" if self.ok else "error",
            "error": self.error,
            "outputs": self.outputs,
            "image_outputs": self.image_outputs,
        }


def result_object_name(task_id: str) -> str:
    """Where a task's records go inside the output batch (one object per task)."""
    return f"results/{task_id}.jsonl"


def image_output_name(input_name: str, output_name: str) -> str:
    """Where an image output of an input goes: derived from both, so reruns overwrite it.

    The input's extension stays in the name, so `x.png` and `x.jpg` of one batch never collide.
    """
    parts = [part for part in input_name.split("/") if part not in ("", ".", "..")]
    return f"images/{'/'.join(parts) or '_'}.{output_name}.jpg"


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""One encoder for every record: json.dumps with options builds a new one per call."""


def to_jsonl(records: list[ImageRecord]) -> bytes:
    return "".join(_ENCODER.encode(r.to_json()) + "\n" for r in records).encode()
