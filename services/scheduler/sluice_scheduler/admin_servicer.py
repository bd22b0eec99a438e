"""sluice.v1.AdminService: workspaces and API keys (admin keys only, but GetWorkspace).

The keys are in Postgres (`sluice.workspaces`), so every service sees a new or revoked key within
seconds. Each workspace is also a NATS account and each key a NATS user; after a workspace or key
is created or a key revoked, they are written again and nats-server reloaded (`sync_nats`).
"""

from __future__ import annotations

import logging
from datetime import datetime

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from sluice import workspaces
from sluice.config import Settings
from sluice.errors import Unavailable
from sluice.grpc_server import current_workspace
from sluice.ids import validate_id
from sluice.nats_auth import sync_nats_users
from sluice.v1 import admin_pb2, admin_pb2_grpc
from sluice.workspaces import ApiKeyRow, WorkspaceRow

log = logging.getLogger(__name__)

SERVICE_NAME = "sluice.v1.AdminService"


async def sync_nats(pool: asyncpg.Pool, settings: Settings) -> None:
    """Write the NATS accounts of the workspaces and users of the unrevoked keys; reload nats-server."""
    await sync_nats_users(pool, settings)


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _workspace(row: WorkspaceRow, with_secret: bool) -> admin_pb2.Workspace:
    return admin_pb2.Workspace(
        workspace=row.workspace,
        created_at=_timestamp(row.created_at),
        webhook_secret=row.webhook_secret if with_secret else "",
    )


def _key(row: ApiKeyRow) -> admin_pb2.ApiKey:
    return admin_pb2.ApiKey(
        key_id=row.key_id,
        workspace=row.workspace,
        name=row.name,
        admin=row.admin,
        created_at=_timestamp(row.created_at),
        revoked_at=_timestamp(row.revoked_at),
        nats_user=row.key_id,
    )


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    admin_only = frozenset(
        {"CreateWorkspace", "ListWorkspaces", "CreateApiKey", "ListApiKeys", "RevokeApiKey"}
    )

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    async def CreateWorkspace(
        self, request: admin_pb2.CreateWorkspaceRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.Workspace:
        row = await workspaces.create_workspace(self._pool, request.workspace)
        log.info("workspace %s created", row.workspace)
        try:
            await sync_nats(self._pool, self._settings)
        except Exception:  # its NATS account comes with the next sync
            log.exception("workspace %s: the NATS accounts could not be written", row.workspace)
        return _workspace(row, with_secret=True)

    async def ListWorkspaces(
        self, request: admin_pb2.ListWorkspacesRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListWorkspacesResponse:
        rows = await workspaces.list_workspaces(self._pool)
        return admin_pb2.ListWorkspacesResponse(workspaces=[_workspace(r, with_secret=False) for r in rows])

    async def GetWorkspace(
        self, request: admin_pb2.GetWorkspaceRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.Workspace:
        row = await workspaces.ensure_workspace(self._pool, current_workspace())
        return _workspace(row, with_secret=True)

    async def CreateApiKey(
        self, request: admin_pb2.CreateApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.CreatedApiKey:
        row, secret = await workspaces.create_api_key(
            self._pool, request.workspace, request.name, request.admin
        )
        log.info("API key %s created for workspace %s (admin: %s)", row.key_id, row.workspace, row.admin)
        try:
            await sync_nats(self._pool, self._settings)
        except Exception:  # the key works for gRPC; its NATS user comes with the next sync
            log.exception("API key %s: the NATS users could not be written", row.key_id)
        return admin_pb2.CreatedApiKey(key=_key(row), api_key=secret)

    async def ListApiKeys(
        self, request: admin_pb2.ListApiKeysRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListApiKeysResponse:
        workspace = validate_id(request.workspace, "workspace") if request.workspace else None
        rows = await workspaces.list_api_keys(self._pool, workspace, request.include_revoked)
        return admin_pb2.ListApiKeysResponse(keys=[_key(r) for r in rows])

    async def RevokeApiKey(
        self, request: admin_pb2.RevokeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ApiKey:
        row = await workspaces.revoke_api_key(self._pool, request.key_id)
        log.info("API key %s of workspace %s revoked", row.key_id, row.workspace)
        try:
            await sync_nats(self._pool, self._settings)
        except Exception:
            log.exception("API key %s: the NATS users could not be written", row.key_id)
            raise Unavailable(
                f"key {row.key_id} is revoked for gRPC calls, but NATS could not be updated "
                "(see the scheduler log); revoke it again to retry"
            ) from None
        return _key(row)
