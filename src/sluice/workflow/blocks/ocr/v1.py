"""sluice/ocr@v1: read the text of an image of one text line (usually a crop per detection).

Also accepted as roboflow_core/ocr_model@v1 (which runs our recogniser). All the crops of a
batch go to the recogniser together. `parent_id` is the id of the element read: for a crop,
the id of the detection it was cut from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sluice.models import Recognizer, load_recognizer
from sluice.models.catalog import ModelCatalog
from sluice.models.registry import TEXT_RECOGNIZER
from sluice.workflow.blocks.base import BlockManifest, Element, Property
from sluice.workflow.blocks.runners import RunnerCache, indices_by_model
from sluice.workflow.kinds import Kind
from sluice.workflow.model_checks import RECOGNITION_TASKS


class OCR:
    def __init__(self, models: ModelCatalog, intra_op_threads: int | None) -> None:
        self._recognizers: RunnerCache[Recognizer] = RunnerCache(models, load_recognizer, intra_op_threads)

    def run(self, batch: list[dict[str, Any]], elements: Sequence[Element]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = [{} for _ in batch]
        for model_id, indices in indices_by_model(batch).items():
            read = self._recognizers.get(model_id).recognize([batch[i]["image"] for i in indices])
            for index, (text, confidence) in zip(indices, read, strict=True):
                results[index] = {
                    "result": text,
                    "confidence": float(confidence),
                    "parent_id": elements[index].id,
                }
        return results


MANIFEST = BlockManifest(
    type="sluice/ocr@v1",
    description="Recognise the text of one text line per image or crop; outputs `result`, `confidence`.",
    properties={
        "image": Property((Kind.IMAGE,), required=True, selector_only=True),
        "model_id": Property((Kind.PARAMETER,), default=TEXT_RECOGNIZER, model_tasks=RECOGNITION_TASKS),
    },
    outputs={"result": Kind.STRING, "confidence": Kind.FLOAT, "parent_id": Kind.STRING},
    build=OCR,
    init_parameters=("models", "intra_op_threads"),
    aliases={"images": "image"},
    type_aliases=("roboflow_core/ocr_model@v1", "OCRModel"),
)
