"""Checking a model id against the catalog: it must exist and do what the block needs."""

from __future__ import annotations

from typing import Any

from sluice.errors import NotFound
from sluice.models.catalog import ModelCatalog

DETECTION_TASKS = ("object-detection", "ocr-detection")
CLASSIFICATION_TASKS = ("classification",)
RECOGNITION_TASKS = ("ocr-recognition",)


def check_model(model_id: Any, tasks: tuple[str, ...], catalog: ModelCatalog) -> None:
    """Raises ValueError when `model_id` is unknown to `catalog` or its task is not in `tasks`."""
    if not isinstance(model_id, str) or not model_id:
        raise ValueError(f"must be a model id string, got {model_id!r}")
    try:
        spec = catalog.spec(model_id)
    except NotFound as error:
        raise ValueError(error.message) from None
    task = getattr(spec, "task", "object-detection")
    if task not in tasks:
        raise ValueError(f"model {model_id!r} has task {task}; this block runs {' or '.join(tasks)} models")
