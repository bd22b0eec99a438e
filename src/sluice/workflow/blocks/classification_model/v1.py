"""sluice/classification_model@v1: classify whole images (or crops) with a model from the catalog.

Also accepted as roboflow_core/roboflow_classification_model@v1 and @v2. `predictions` is
Roboflow's classification shape: {"top", "class_id", "confidence", "predictions": [{"class",
"class_id", "confidence"}, ...] best first, "parent_id"}; `top` and `confidence` repeat the
best class for wiring into other steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sluice.models import Classifier, load_classifier
from sluice.models.catalog import ModelCatalog
from sluice.workflow.blocks.base import BlockManifest, Element, Property
from sluice.workflow.blocks.checks import check_fraction
from sluice.workflow.blocks.runners import RunnerCache, indices_by_model
from sluice.workflow.kinds import Kind
from sluice.workflow.model_checks import CLASSIFICATION_TASKS


class ClassificationModel:
    """Classifies every image of a batch, one model call per model (and batch size)."""

    def __init__(self, models: ModelCatalog, intra_op_threads: int | None) -> None:
        self._classifiers: RunnerCache[Classifier] = RunnerCache(models, load_classifier, intra_op_threads)

    def run(self, batch: list[dict[str, Any]], elements: Sequence[Element]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = [{} for _ in batch]
        for model_id, indices in indices_by_model(batch).items():
            found = self._classifiers.get(model_id).classify([batch[i]["image"] for i in indices])
            for index, result in zip(indices, found, strict=True):
                threshold = batch[index]["confidence"]
                prediction = result.to_dict()
                prediction["predictions"] = [
                    p for p in prediction["predictions"] if threshold is None or p["confidence"] >= threshold
                ]
                prediction["parent_id"] = elements[index].id
                results[index] = {
                    "predictions": prediction,
                    "top": result.class_name,
                    "confidence": float(result.confidence),
                }
        return results


MANIFEST = BlockManifest(
    type="sluice/classification_model@v1",
    description="Classify images with a model from the catalog; outputs `predictions`, `top`, `confidence`.",
    properties={
        "image": Property((Kind.IMAGE,), required=True, selector_only=True),
        "model_id": Property((Kind.PARAMETER,), required=True, model_tasks=CLASSIFICATION_TASKS),
        "confidence": Property(
            (Kind.PARAMETER,),
            default=None,
            check=check_fraction,
            description="Classes below this confidence are left out of `predictions` (the top class stays).",
        ),
    },
    outputs={"predictions": Kind.CLASSIFICATION, "top": Kind.STRING, "confidence": Kind.FLOAT},
    build=ClassificationModel,
    init_parameters=("models", "intra_op_threads"),
    aliases={"images": "image"},
    ignored=frozenset({"disable_active_learning", "active_learning_target_dataset"}),
    type_aliases=(
        "roboflow_core/roboflow_classification_model@v1",
        "roboflow_core/roboflow_classification_model@v2",
        "RoboflowClassificationModel",
        "ClassificationModel",
    ),
)
