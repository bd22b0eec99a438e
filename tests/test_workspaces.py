"""Workspaces and API keys in Postgres, served for real: staging and the scheduler (with its
AdminService) against real NATS and Postgres, called over gRPC."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import bcrypt
import grpc
import pytest

from sluice import auth_schema, db, workspaces
from sluice.auth import CACHE_SECONDS, KeyRing, add_key, hash_key, new_api_key
from sluice.clients import aio_channel, internal_metadata, scheduler_stub, user_metadata
from sluice.config import Settings
from sluice.errors import Unauthenticated
from sluice.v1 import admin_pb2, admin_pb2_grpc, common_pb2, scheduler_pb2, staging_pb2
from sluice_scheduler.coordinator import SchedulerOptions
from sluice_scheduler.service import start as start_scheduler
from tests.staging_server import Launch, Staging


@dataclasses.dataclass
class Services:
    staging: Staging
    admin: Any
    scheduler: Any
    pool: Any
    keys: dict[str, str]


@pytest.fixture
async def services(
    launch: Launch, settings: Settings, api_keys: tuple[Path, dict[str, str]]
) -> AsyncIterator[Services]:
    staging = await launch()
    settings = dataclasses.replace(settings, staging_address=f"127.0.0.1:{staging.running.port}")
    scheduler = await start_scheduler(settings, "127.0.0.1:0", SchedulerOptions())
    channel = aio_channel(f"127.0.0.1:{scheduler.port}")
    yield Services(
        staging,
        admin_pb2_grpc.AdminServiceStub(channel),
        scheduler_stub(channel),
        staging.running.pool,
        api_keys[1],
    )
    await channel.close()
    await scheduler.stop()


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def new_key(
    svc: Services, workspace: str, admin: bool = False, name: str = ""
) -> admin_pb2.CreatedApiKey:
    """A key of `workspace` (created first when missing), made with alpha's bootstrap admin key."""
    root = user_metadata(svc.keys["alpha"])
    listed = await svc.admin.ListWorkspaces(admin_pb2.ListWorkspacesRequest(), metadata=root)
    if workspace not in [w.workspace for w in listed.workspaces]:
        await svc.admin.CreateWorkspace(admin_pb2.CreateWorkspaceRequest(workspace=workspace), metadata=root)
    return await svc.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(workspace=workspace, name=name, admin=admin), metadata=root
    )


async def test_keys_are_stored_hashed_and_work_at_once(services: Services) -> None:
    created = await new_key(services, "gamma", name="ci runner")
    secret = created.api_key
    assert secret.startswith("sk_") and len(secret) > 30
    assert created.key.key_id.startswith("key_") and len(created.key.key_id) == 16
    assert created.key.nats_user == created.key.key_id
    assert (created.key.workspace, created.key.name, created.key.admin) == ("gamma", "ci runner", False)

    rows = await services.pool.fetch("SELECT * FROM auth.api_keys")
    stored = " ".join(str(value) for row in rows for value in row.values())
    assert secret not in stored
    row = next(r for r in rows if r["key_id"] == created.key.key_id)
    assert row["key_hash"] == hash_key(secret)
    assert row["nats_password_hash"].startswith("$2a$")
    assert bcrypt.checkpw(secret.encode(), row["nats_password_hash"].encode())

    # the new key works on both services straight away, in its own workspace
    md = user_metadata(secret)
    await services.staging.stub.CreateBatch(
        staging_pb2.CreateBatchRequest(batch_id="g1", type=common_pb2.BATCH_TYPE_IMAGES), metadata=md
    )
    listed = await services.staging.stub.ListBatches(staging_pb2.ListBatchesRequest(), metadata=md)
    assert [b.batch_id for b in listed.batches] == ["g1"]
    alpha = user_metadata(services.keys["alpha"])
    theirs = await services.staging.stub.ListBatches(staging_pb2.ListBatchesRequest(), metadata=alpha)
    assert "g1" not in [b.batch_id for b in theirs.batches]
    jobs = await services.scheduler.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=md)
    assert list(jobs.jobs) == []
    own = await services.admin.GetWorkspace(admin_pb2.GetWorkspaceRequest(), metadata=md)
    assert own.workspace == "gamma" and own.webhook_secret


async def test_a_revoked_key_is_refused_on_every_service_within_seconds(services: Services) -> None:
    created = await new_key(services, "gamma")
    md = user_metadata(created.api_key)
    staging_call = lambda: services.staging.stub.ListBatches(staging_pb2.ListBatchesRequest(), metadata=md)  # noqa: E731
    scheduler_call = lambda: services.scheduler.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=md)  # noqa: E731
    await staging_call()
    await scheduler_call()  # both services now hold the key in their caches
    root = user_metadata(services.keys["alpha"])
    revoked = await services.admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(key_id=created.key.key_id), metadata=root
    )
    assert revoked.HasField("revoked_at")
    started = time.monotonic()
    refused: dict[str, float] = {}
    while len(refused) < 2 and time.monotonic() - started < 10:
        for name, call in (("staging", staging_call), ("scheduler", scheduler_call)):
            if name in refused:
                continue
            try:
                await call()
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.UNAUTHENTICATED
                assert error.details() == "invalid or revoked API key"
                refused[name] = time.monotonic() - started
        await asyncio.sleep(0.1)
    assert set(refused) == {"staging", "scheduler"}
    assert max(refused.values()) < 5

    keys = await services.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(workspace="gamma"), metadata=root)
    assert created.key.key_id not in [k.key_id for k in keys.keys]
    every = await services.admin.ListApiKeys(
        admin_pb2.ListApiKeysRequest(workspace="gamma", include_revoked=True), metadata=root
    )
    assert [k.key_id for k in every.keys if k.HasField("revoked_at")] == [created.key.key_id]
    again = await services.admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(key_id=created.key.key_id), metadata=root
    )
    assert again.revoked_at == revoked.revoked_at


async def test_bootstrap_workspaces_are_created_with_secrets(services: Services, launch: Launch) -> None:
    rows = {
        r["workspace"]: r["webhook_secret"]
        for r in await services.pool.fetch("SELECT workspace, webhook_secret FROM auth.workspaces")
    }
    assert set(rows) == {"alpha", "beta"}
    assert len(set(rows.values())) == 2 and all(len(s) > 30 for s in rows.values())
    assert await workspaces.webhook_secret(services.pool, "alpha") == rows["alpha"]
    for workspace in ("alpha", "beta"):
        shown = await services.admin.GetWorkspace(
            admin_pb2.GetWorkspaceRequest(), metadata=user_metadata(services.keys[workspace])
        )
        assert (shown.workspace, shown.webhook_secret) == (workspace, rows[workspace])
    # a second staging (a restart, another replica) keeps what is there
    await launch()
    again = {
        r["workspace"]: r["webhook_secret"]
        for r in await services.pool.fetch("SELECT workspace, webhook_secret FROM auth.workspaces")
    }
    assert again == rows
    listed = await services.admin.ListWorkspaces(
        admin_pb2.ListWorkspacesRequest(), metadata=user_metadata(services.keys["alpha"])
    )
    assert [w.workspace for w in listed.workspaces] == ["alpha", "beta"]
    assert all(not w.webhook_secret for w in listed.workspaces)


async def test_admin_verbs_need_an_admin_key(services: Services) -> None:
    plain = user_metadata((await new_key(services, "gamma")).api_key)
    admin = user_metadata((await new_key(services, "gamma", admin=True)).api_key)
    for call in (
        services.admin.CreateWorkspace(admin_pb2.CreateWorkspaceRequest(workspace="delta"), metadata=plain),
        services.admin.ListWorkspaces(admin_pb2.ListWorkspacesRequest(), metadata=plain),
        services.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(workspace="gamma"), metadata=plain),
        services.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=plain),
        services.admin.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(key_id="key_000000000000"), metadata=plain),
    ):
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert (error.details() or "").endswith("needs an admin API key")
    # an admin key made by an admin key administers the whole installation
    made = await services.admin.CreateWorkspace(
        admin_pb2.CreateWorkspaceRequest(workspace="delta"), metadata=admin
    )
    assert made.workspace == "delta" and made.webhook_secret
    keys = await services.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=admin)
    assert [k.workspace for k in keys.keys] == ["gamma", "gamma"]


async def test_internal_only_methods_refuse_every_api_key(services: Services, settings: Settings) -> None:
    await services.staging.stub.CreateBatch(
        staging_pb2.CreateBatchRequest(batch_id="mine", type=common_pb2.BATCH_TYPE_IMAGES),
        metadata=user_metadata(services.keys["alpha"]),
    )
    get = staging_pb2.GetBatchRequest(batch_id="mine")
    register = staging_pb2.RegisterOutputBatchRequest(
        batch_id="mine-out", type=common_pb2.BATCH_TYPE_PROCESSING_RESULTS
    )
    hold = staging_pb2.HoldBatchRequest(batch_id="mine")
    for md in (
        user_metadata(services.keys["alpha"]),
        user_metadata((await new_key(services, "alpha")).api_key),
    ):
        for call in (
            services.staging.stub.GetBatchLocation(get, metadata=md),
            services.staging.stub.RegisterOutputBatch(register, metadata=md),
            services.staging.stub.HoldBatch(hold, metadata=md),
        ):
            error = await rpc_error(call)
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
            assert (error.details() or "").endswith("is for Sluice services only")
    location = await services.staging.stub.GetBatchLocation(
        get, metadata=internal_metadata(settings.internal_token, "alpha")
    )
    assert location.batch_id == "mine"


async def test_missing_unknown_and_malformed_keys(services: Services) -> None:
    root = user_metadata(services.keys["alpha"])
    for md in ((), user_metadata("sk_not_a_key"), user_metadata(new_api_key())):
        for call in (
            services.staging.stub.ListBatches(staging_pb2.ListBatchesRequest(), metadata=md),
            services.scheduler.ListJobs(scheduler_pb2.ListJobsRequest(), metadata=md),
            services.admin.GetWorkspace(admin_pb2.GetWorkspaceRequest(), metadata=md),
        ):
            error = await rpc_error(call)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    refusals = [
        (admin_pb2.CreateWorkspaceRequest(workspace="Bad Name"), "CreateWorkspace", "INVALID_ARGUMENT"),
        (admin_pb2.CreateWorkspaceRequest(workspace="alpha"), "CreateWorkspace", "ALREADY_EXISTS"),
        (admin_pb2.CreateApiKeyRequest(workspace="nowhere"), "CreateApiKey", "NOT_FOUND"),
        (admin_pb2.CreateApiKeyRequest(workspace="alpha", name="a\nb"), "CreateApiKey", "INVALID_ARGUMENT"),
        (admin_pb2.RevokeApiKeyRequest(key_id="key_ffffffffffff"), "RevokeApiKey", "NOT_FOUND"),
        (admin_pb2.ListApiKeysRequest(workspace="Bad/Name"), "ListApiKeys", "INVALID_ARGUMENT"),
    ]
    for request, method, code in refusals:
        error = await rpc_error(getattr(services.admin, method)(request, metadata=root))
        assert error.code().name == code, (method, error.details())
        assert "\n" not in (error.details() or "")


async def test_key_ring_reads_the_keys_file_then_postgres(database_url: str, tmp_path: Path) -> None:
    pool = await db.connect(database_url)
    try:
        await db.migrate(pool, auth_schema.SCHEMA, auth_schema.PACKAGE)
        keys_file = tmp_path / "keys.json"
        boot = new_api_key()
        add_key(keys_file, "first", boot)
        ring = KeyRing(keys_file, "token", pool)
        await ring.start()
        assert await workspaces.get_workspace(pool, "first") is not None
        caller = await ring.caller_for({"x-api-key": boot})
        assert (caller.workspace, caller.admin, caller.internal) == ("first", True, False)

        # a key added to the file later is read, and its workspace gets its row
        late = new_api_key()
        add_key(keys_file, "second", late)
        assert (await ring.caller_for({"x-api-key": late})).workspace == "second"
        assert await workspaces.get_workspace(pool, "second") is not None

        row, secret = await workspaces.create_api_key(pool, "second", name="n")
        caller = await ring.caller_for({"x-api-key": secret})
        assert (caller.workspace, caller.admin, caller.key_id) == ("second", False, row.key_id)
        await workspaces.revoke_api_key(pool, row.key_id)
        await asyncio.sleep(CACHE_SECONDS + 0.1)
        with pytest.raises(Unauthenticated):
            await ring.caller_for({"x-api-key": secret})
        internal = await ring.caller_for({"x-sluice-internal-token": "token", "x-sluice-workspace": "second"})
        assert internal.internal and internal.workspace == "second" and internal.may_administer
    finally:
        await pool.close()
