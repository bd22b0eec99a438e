"""sluice.v1.ModelService: the model registry, every call scoped to the caller's workspace.

Built-in models (shipped inside Python packages) are listed for everyone and cannot be replaced;
a workspace's own models are ONNX files with their spec, stored in the object store (staging owns
stored bytes) and recorded in `staging.models`. Another workspace's model is simply not found.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterable
from pathlib import Path

import grpc

from sluice import storage
from sluice.errors import NotFound, Unavailable
from sluice.grpc_server import current_workspace
from sluice.models.registry import BUILT_IN_IDS, get_model, is_built_in
from sluice.models.spec_json import spec_to_json
from sluice.models.stored import MAX_MODEL_BYTES
from sluice.v1 import models_pb2, models_pb2_grpc
from sluice_staging.model_files import model_file_url, publish_model
from sluice_staging.model_repository import ModelRepository, ModelRow
from sluice_staging.model_rules import check_model_file
from sluice_staging.model_upload import receive_model

log = logging.getLogger(__name__)
_READ_BYTES = 1024 * 1024


@functools.lru_cache(maxsize=32)
def _file_identity(path: str, mtime_ns: int) -> tuple[int, str]:
    """(size, sha256) of a built-in model's file, hashed once per version."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(_READ_BYTES):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _built_in_message(model_id: str) -> models_pb2.Model:
    spec = get_model(model_id)
    size, sha256 = _file_identity(str(spec.path), spec.path.stat().st_mtime_ns)
    return models_pb2.Model(
        model_id=model_id,
        task=spec.task,
        spec_json=spec_to_json(spec),
        size_bytes=size,
        sha256=sha256,
        built_in=True,
    )


def _built_in_messages() -> list[models_pb2.Model]:
    """Every built-in model whose package is installed here."""
    messages = []
    for model_id in sorted(BUILT_IN_IDS):
        try:
            messages.append(_built_in_message(model_id))
        except NotFound as error:
            log.warning("built-in model %s is unavailable: %s", model_id, error.message)
    return messages


class ModelServicer(models_pb2_grpc.ModelServiceServicer):
    def __init__(
        self, repository: ModelRepository, store: storage.ObjectStore, max_model_bytes: int = MAX_MODEL_BYTES
    ) -> None:
        self._repository = repository
        self._store = store
        self._max_model_bytes = max_model_bytes

    def _message(self, row: ModelRow) -> models_pb2.Model:
        message = models_pb2.Model(
            model_id=row.model_id,
            task=row.task,
            spec_json=row.spec_json,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            url=model_file_url(self._store, row.workspace, row.model_id),
        )
        message.created_at.FromDatetime(row.created_at)
        return message

    async def RegisterModel(
        self,
        request_iterator: AsyncIterable[models_pb2.RegisterModelChunk],
        context: grpc.aio.ServicerContext,
    ) -> models_pb2.Model:
        workspace = current_workspace()
        folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="sluice-model-"))
        try:
            received = await receive_model(request_iterator, folder / "model.onnx", self._max_model_bytes)
            spec = await asyncio.to_thread(check_model_file, received.path, received.spec)
            spec_json = spec_to_json(spec)
            async with self._repository.writing(workspace, spec.model_id) as writer:
                try:
                    await asyncio.to_thread(
                        publish_model,
                        self._store,
                        workspace,
                        spec,
                        received.path,
                        received.sha256,
                        received.size_bytes,
                    )
                except OSError as error:
                    log.exception("storing model %s failed", spec.model_id)
                    raise Unavailable(
                        f"the object store could not store model '{spec.model_id}'; try again"
                    ) from error
                row = await writer.put(
                    workspace, spec.model_id, spec.task, spec_json, received.size_bytes, received.sha256
                )
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)
        log.info("workspace %s registered model %s (%d bytes)", workspace, row.model_id, row.size_bytes)
        return self._message(row)

    async def ListModels(
        self, request: models_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.ListModelsResponse:
        workspace = current_workspace()
        built_in = await asyncio.to_thread(_built_in_messages)
        rows = await self._repository.list(workspace)
        return models_pb2.ListModelsResponse(models=[*built_in, *(self._message(r) for r in rows)])

    async def GetModel(
        self, request: models_pb2.GetModelRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.Model:
        model_id = request.model_id
        if is_built_in(model_id):
            return await asyncio.to_thread(_built_in_message, model_id)
        row = await self._repository.get(current_workspace(), model_id)
        if row is None:
            raise NotFound(f"unknown model '{model_id}'")
        return self._message(row)
