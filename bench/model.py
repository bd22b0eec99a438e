"""A workflow compiled as the worker compiles it, run the way every in-process way runs it.

`WorkflowRunner` is what the bare loop and each Ray actor call per batch: JPEG bytes -> decoded
BGR images -> `CompiledWorkflow.run` -> JSON lines (image outputs dropped, as a job that does not
save image outputs keeps only the JSON). Every way therefore decodes, infers, draws the boxes the
workflow asks for and serialises the predictions. `bench/workflows.py` says which workflows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from sluice.models import ModelCatalog
from sluice.workflow import CompiledWorkflow, compile_workflow, to_json_value

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW_FILE = ROOT / "examples" / "workflows" / "text-detection.json"


def decode(data: bytes) -> np.ndarray:
    """JPEG/PNG bytes -> BGR uint8 [H, W, 3]; raises ValueError when they are not an image."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a decodable image")
    return image


class WorkflowRunner:
    """A compiled workflow; `run` takes encoded images and returns one JSON line each.

    `models` resolves the user models it names (None: built-in models only).
    """

    def __init__(
        self, definition: str, intra_op_threads: int | None = None, models: ModelCatalog | None = None
    ) -> None:
        self.workflow: CompiledWorkflow = compile_workflow(
            definition, intra_op_threads=intra_op_threads, models=models
        )

    def run(self, encoded: Sequence[bytes]) -> list[str]:
        images = [decode(data) for data in encoded]
        outputs = self.workflow.run(images)
        skip = set(self.workflow.image_outputs)
        return [
            json.dumps({k: to_json_value(v, image.shape) for k, v in out.items() if k not in skip})
            for image, out in zip(images, outputs, strict=True)
        ]

    def warm(self, encoded: bytes, times: int = 3) -> None:
        """Load the model and run it a few times so that timing starts warm."""
        for _ in range(times):
            self.run([encoded])
