"""Where model specs come from: the built-in registry, and models users registered.

The workflow compiler and blocks receive a catalog (in `BlockContext.models`) instead of
looking models up themselves, so the scheduler (which validates) and the worker (which runs)
can each resolve user models their own way: the scheduler from the registry service, the
worker from the object store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from sluice.errors import NotFound
from sluice.models.registry import get_model, is_known
from sluice.models.spec import ModelSpec


class ModelCatalog(Protocol):
    def spec(self, model_id: str) -> ModelSpec:
        """The spec of `model_id`; raises sluice.errors.NotFound naming it when unknown."""
        ...


class BuiltinCatalog:
    """Only the models that ship inside Python packages."""

    def spec(self, model_id: str) -> ModelSpec:
        return get_model(model_id)


class MappingCatalog:
    """Built-in models plus a fixed set of user models (already fetched by the caller)."""

    def __init__(self, user_models: Mapping[str, ModelSpec]) -> None:
        self._user = dict(user_models)

    def spec(self, model_id: str) -> ModelSpec:
        if is_known(model_id):
            return get_model(model_id)
        found = self._user.get(model_id)
        if found is None:
            raise NotFound(f"unknown model '{model_id}'")
        return found
