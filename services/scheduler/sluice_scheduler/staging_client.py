"""Calls to the staging service on behalf of a workspace (internal token + workspace)."""

from __future__ import annotations

import grpc

from sluice.clients import aio_channel, internal_metadata, staging_stub
from sluice.errors import from_rpc_error
from sluice.models.spec import ModelSpec
from sluice.models.spec_json import spec_from_json
from sluice.v1 import common_pb2, models_pb2, models_pb2_grpc, staging_pb2

CALL_DEADLINE_S = 30.0


class StagingClient:
    def __init__(self, address: str, internal_token: str) -> None:
        self._channel = aio_channel(address)
        self._stub = staging_stub(self._channel)
        self._models = models_pb2_grpc.ModelServiceStub(self._channel)
        self._token = internal_token

    async def close(self) -> None:
        await self._channel.close()

    def _md(self, workspace: str) -> tuple[tuple[str, str], ...]:
        return tuple(internal_metadata(self._token, workspace))

    async def hold(
        self, workspace: str, batch_id: str, job_id: str, hold_seconds: float
    ) -> staging_pb2.Batch:
        """Keep a batch from expiring for at least `hold_seconds` while `job_id` uses it; an
        expired batch is refused (FailedPrecondition saying when it expired)."""
        try:
            return await self._stub.HoldBatch(
                staging_pb2.HoldBatchRequest(batch_id=batch_id, job_id=job_id, hold_seconds=hold_seconds),
                metadata=self._md(workspace),
                timeout=CALL_DEADLINE_S,
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    async def location(self, workspace: str, batch_id: str) -> str:
        try:
            found = await self._stub.GetBatchLocation(
                staging_pb2.GetBatchRequest(batch_id=batch_id),
                metadata=self._md(workspace),
                timeout=CALL_DEADLINE_S,
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return str(found.url)

    async def object_names(self, workspace: str, batch_id: str) -> list[str]:
        """Every object name of a batch, in name order."""
        return [o.name for o in await self.objects(workspace, batch_id)]

    async def objects(self, workspace: str, batch_id: str) -> list[staging_pb2.BatchObject]:
        """Every object of a batch (with what staging probed of videos), in name order."""
        objects: list[staging_pb2.BatchObject] = []
        token = ""
        while True:
            try:
                page = await self._stub.ListBatchContent(
                    staging_pb2.ListBatchContentRequest(
                        batch_id=batch_id, page_size=10000, page_token=token, all_parts=True
                    ),
                    metadata=self._md(workspace),
                    timeout=CALL_DEADLINE_S,
                )
            except grpc.RpcError as error:
                raise from_rpc_error(error) from None
            objects.extend(page.objects)
            token = page.next_page_token
            if not token:
                return objects

    async def register_output(
        self, workspace: str, batch_id: str, batch_type: common_pb2.BatchType, job_id: str
    ) -> staging_pb2.Batch:
        try:
            return await self._stub.RegisterOutputBatch(
                staging_pb2.RegisterOutputBatchRequest(
                    batch_id=batch_id, type=batch_type, source_job_id=job_id
                ),
                metadata=self._md(workspace),
                timeout=CALL_DEADLINE_S,
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    async def model_spec(self, workspace: str, model_id: str) -> ModelSpec:
        """A registered model's spec from the registry (NotFound naming it when unknown)."""
        try:
            model = await self._models.GetModel(
                models_pb2.GetModelRequest(model_id=model_id),
                metadata=self._md(workspace),
                timeout=CALL_DEADLINE_S,
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return spec_from_json(model.spec_json, model_id=model_id)
