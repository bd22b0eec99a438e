"""NATS authorization for API keys, on a real nats-server started from the local stack's config.

The users file is what `sluice.nats_auth` renders from real Postgres rows (auth schema); keys come
and go through `sluice.workspaces` as the AdminService makes them, and the server is reloaded
without a restart. A key's user reads its own workspace's events and nothing else, and cannot
make JetStream deliver anything into the services' subjects either.
"""

from __future__ import annotations

import asyncio
import secrets
import stat
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StreamConfig

from sluice import db, messaging, workspaces
from sluice.config import Settings
from sluice.nats_auth import (
    NatsUser,
    parse_users_file,
    render_users,
    service_password_hash,
    sync_nats_users,
    write_users_file,
)
from sluice.stack.nats_process import NatsServer, start_nats, write_nats_config
from sluice.stack.ports import free_port
from sluice.stack.processes import cmdline
from sluice.v1 import events_pb2

SERVICE_USER = "sluice"
HASH = "$2a$11$" + "x" * 53  # shaped like a bcrypt hash; render_users never checks it


@dataclass
class SecuredNats:
    server: NatsServer
    settings: Settings
    server_log: Path


@pytest.fixture
def secured_nats(tmp_path: Path, database_url: str) -> Iterator[SecuredNats]:
    """nats-server started as `sluice up` starts it: config file, users file with the services'
    account only, pid file."""
    folder = tmp_path / "nats"
    folder.mkdir()
    token = secrets.token_urlsafe(16)
    users, pid = folder / "users.conf", folder / "nats-server.pid"
    write_users_file(
        users, render_users([], service_user=SERVICE_USER, service_password_hash=service_password_hash(token))
    )
    port = free_port()
    server = start_nats(folder, port=port, config_file=write_nats_config(folder, port, users, pid))
    settings = Settings(
        database_url=database_url,
        nats_url=server.url,
        internal_token=token,
        nats_user=SERVICE_USER,
        nats_password=token,
        nats_users_file=users,
        nats_pid_file=pid,
    )
    yield SecuredNats(server, settings, folder / "nats-server.log")
    server.stop()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.connect(database_url)
    await db.migrate(pool, "auth", "sluice.auth_schema")
    yield pool
    await pool.close()


@pytest.fixture
async def services(secured_nats: SecuredNats) -> AsyncIterator[Client]:
    """The services' connection, publishing events as the local stack does."""
    settings = secured_nats.settings
    nc = await messaging.connect(
        settings.nats_url, "test-services", settings.nats_user, settings.nats_password
    )
    await messaging.ensure_streams(nc.jetstream(), settings)
    yield nc
    await nc.close()


class KeyClient:
    """A key's NATS connection as an outside subscriber makes it; errors the server sends are kept."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc: Client | None = None

    async def connect(self, url: str, key_id: str, api_key: str) -> Client:
        async def on_error(error: Exception) -> None:
            self.errors.append(str(error).lower())

        self.nc = await nats.connect(
            url,
            user=key_id,
            password=api_key,
            inbox_prefix=f"_INBOX_{key_id}",
            error_cb=on_error,
            allow_reconnect=False,
            connect_timeout=2,
        )
        return self.nc

    def violations(self) -> str:
        return "\n".join(e for e in self.errors if "permissions violation" in e)


async def refused_connect(url: str, user: str | None, password: str | None) -> str:
    try:
        nc = await nats.connect(url, user=user, password=password, allow_reconnect=False, connect_timeout=2)
    except Exception as error:  # nats-py raises its generic Error with the server's reason
        return str(error)
    await nc.close()
    raise AssertionError(f"user {user!r} got in")


async def connect_within(url: str, key_id: str, api_key: str, timeout_s: float = 5.0) -> KeyClient:
    """A key's connection, retried while the server reloads."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        client = KeyClient()
        try:
            await client.connect(url, key_id, api_key)
            return client
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def synced(pool: asyncpg.Pool, nats: SecuredNats) -> None:
    """Sync the users and wait until the server says it reloaded them: a client that connects
    in the middle of a reload may be left with its workspace's account as it was before."""
    log = nats.server_log
    before = log.read_text().count("Reloaded server configuration")
    assert await sync_nats_users(pool, nats.settings)
    for _ in range(100):
        if log.read_text().count("Reloaded server configuration") > before:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nats-server did not reload; its log:\n{log.read_text()[-2000:]}")


PROBE = "probe"


async def until_live(js: JetStreamContext, live: list[events_pb2.Event]) -> int:
    """Publish alpha probe events until the live subscription hears one; how many it took.

    nats-server (2.15) lets a subscription made a moment ago miss, now and then, the first
    message that crosses into its account from the services' account; docs/events.md tells
    subscribers to use a consumer to miss nothing."""
    probe = event("alpha", PROBE, events_pb2.EVENT_TYPE_JOB_CREATED)
    for sent in range(1, 51):
        probe.event_id = secrets.token_hex(8)  # a new message id: not deduplicated
        await messaging.publish_event(js, probe, "job_created")
        for _ in range(10):
            if any(e.job_id == PROBE for e in live):
                return sent
            await asyncio.sleep(0.02)
    raise AssertionError("the live subscription heard none of 50 probe events")


async def new_key(pool: asyncpg.Pool, workspace: str) -> tuple[str, str]:
    if await workspaces.get_workspace(pool, workspace) is None:
        await workspaces.create_workspace(pool, workspace)
    row, secret = await workspaces.create_api_key(pool, workspace, name="test")
    return row.key_id, secret


def event(workspace: str, job_id: str, kind: int, message: str = "") -> events_pb2.Event:
    e = events_pb2.Event(
        event_id=secrets.token_hex(8), type=kind, workspace=workspace, job_id=job_id, message=message
    )
    e.time.GetCurrentTime()
    return e


def test_render_users_gives_each_key_an_account_of_its_workspace() -> None:
    text = render_users(
        [
            NatsUser("key_00000000000a", "alpha", HASH),
            NatsUser("key_00000000000b", "beta", HASH),
            NatsUser("not-a-key-id", "alpha", HASH),  # left out: it would be a config key
            NatsUser("key_00000000000c", "Bad.Name", HASH),  # left out: it would be a subject
        ],
        workspaces=["gamma"],
        service_user=SERVICE_USER,
        service_password_hash=HASH,
    )
    accounts = parse_users_file(text)
    assert sorted(accounts) == ["SLUICE", "WS_alpha", "WS_beta", "WS_gamma"]
    assert accounts["SLUICE"]["users"] == [{"user": SERVICE_USER, "password": HASH}]
    assert "permissions" not in accounts["SLUICE"]["users"][0]  # the services may do anything
    imports = {
        (i["service"]["account"], i.get("to", i["service"]["subject"])) for i in accounts["SLUICE"]["imports"]
    }
    assert ("WS_alpha", "sluice.events.alpha.>") in imports
    assert ("WS_alpha", "$JS.WS_alpha.API.>") in imports
    assert accounts["WS_gamma"]["users"] == []  # a workspace without keys still keeps its events
    (user,) = accounts["WS_alpha"]["users"]
    assert (user["user"], user["password"]) == ("key_00000000000a", HASH)
    permissions = user["permissions"]
    assert permissions["subscribe"]["allow"] == ["sluice.events.alpha.>", "_INBOX_key_00000000000a.>"]
    published = permissions["publish"]["allow"]
    assert all("SLUICE_EVENTS_alpha" in subject for subject in published), published
    assert not any(
        word in s for s in published for word in ("STREAM.NAMES", "STREAM.LIST", "CREATE.SLUICE_EVENTS_beta")
    )
    assert "$JS.API.STREAM.DELETE.SLUICE_EVENTS_alpha" not in published
    assert all(s.startswith(("$JS.API.", "$JS.ACK.", "$JS.FC.")) for s in published)


async def test_only_the_services_and_known_keys_get_in(secured_nats: SecuredNats) -> None:
    url, settings = secured_nats.server.url, secured_nats.settings
    assert "authorization violation" in (await refused_connect(url, None, None)).lower()
    assert "authorization violation" in (await refused_connect(url, SERVICE_USER, "wrong")).lower()
    nc = await messaging.connect(url, "test", settings.nats_user, settings.nats_password)
    assert nc.is_connected
    await nc.close()
    text = settings.nats_users_file.read_text() if settings.nats_users_file else ""
    assert settings.nats_password not in text  # only its bcrypt hash
    assert stat.S_IMODE(Path(settings.nats_users_file or "").stat().st_mode) == 0o600
    assert settings.nats_password not in cmdline(secured_nats.server.pid)


async def test_a_new_key_gets_in_after_sync_and_a_revoked_one_is_cut_off(
    secured_nats: SecuredNats, pool: asyncpg.Pool
) -> None:
    url, settings = secured_nats.server.url, secured_nats.settings
    key_id, api_key = await new_key(pool, "alpha")
    assert "authorization violation" in (await refused_connect(url, key_id, api_key)).lower()

    assert await sync_nats_users(pool, settings)  # writes the file and reloads the running server
    assert not await sync_nats_users(pool, settings)  # nothing changed: no write, no reload
    assert api_key not in Path(settings.nats_users_file or "").read_text()
    client = await connect_within(url, key_id, api_key)
    assert client.nc is not None and client.nc.is_connected
    assert "authorization violation" in (await refused_connect(url, key_id, "sk_wrong")).lower()

    await workspaces.revoke_api_key(pool, key_id)
    assert await sync_nats_users(pool, settings)
    for _ in range(50):  # the server drops the revoked user's open connection on reload
        if not client.nc.is_connected:
            break
        await asyncio.sleep(0.1)
    assert not client.nc.is_connected
    assert "authorization violation" in (await refused_connect(url, key_id, api_key)).lower()


async def test_sync_without_a_users_file_does_nothing(pool: asyncpg.Pool, database_url: str) -> None:
    assert not await sync_nats_users(pool, Settings(database_url=database_url))


async def test_a_key_reads_its_workspace_events_and_reaches_nothing_else(
    secured_nats: SecuredNats, pool: asyncpg.Pool, services: Client
) -> None:
    url = secured_nats.server.url
    alpha_id, alpha_key = await new_key(pool, "alpha")
    await new_key(pool, "beta")
    await synced(pool, secured_nats)
    js = services.jetstream()
    await messaging.publish_event(
        js, event("alpha", "old-job", events_pb2.EVENT_TYPE_JOB_CREATED), "job_created"
    )
    await messaging.publish_event(
        js, event("beta", "secret", events_pb2.EVENT_TYPE_JOB_CREATED), "job_created"
    )
    seen_by_services: list[str] = []

    async def on_internal(msg: Any) -> None:
        seen_by_services.append(msg.subject)

    await services.subscribe("sluice.results.>", cb=on_internal)
    await services.subscribe("sluice.tasks.>", cb=on_internal)
    await services.flush()

    client = await connect_within(url, alpha_id, alpha_key)
    nc = client.nc
    assert nc is not None
    live: list[events_pb2.Event] = []

    async def on_live(msg: Any) -> None:
        live.append(events_pb2.Event.FromString(msg.data))

    await nc.subscribe("sluice.events.alpha.>", cb=on_live)
    for subject in ("sluice.events.beta.>", "sluice.tasks.>", "sluice.results.>", "_INBOX.>", ">"):
        await nc.subscribe(subject)
    await nc.flush()
    probes = await until_live(js, live)
    await messaging.publish_event(
        js, event("alpha", "new-job", events_pb2.EVENT_TYPE_JOB_COMPLETED), "job_completed"
    )
    await messaging.publish_event(
        js, event("beta", "secret", events_pb2.EVENT_TYPE_JOB_COMPLETED), "job_completed"
    )

    ujs = nc.jetstream()
    replay = await ujs.subscribe("sluice.events.alpha.>", stream="SLUICE_EVENTS_alpha", ordered_consumer=True)
    replayed: list[str] = []
    while len(replayed) < 2:
        job_id = events_pb2.Event.FromString((await replay.next_msg(timeout=5)).data).job_id
        if job_id != PROBE:
            replayed.append(job_id)
    assert replayed == ["old-job", "new-job"]
    for _ in range(50):
        if any(e.job_id == "new-job" for e in live):
            break
        await asyncio.sleep(0.1)
    assert [e.job_id for e in live if e.job_id != PROBE] == ["new-job"]

    for attempt in (
        ujs.subscribe("sluice.events.beta.>", stream="SLUICE_EVENTS_beta", ordered_consumer=True),
        ujs.pull_subscribe("sluice.events.beta.>", stream="SLUICE_EVENTS_beta"),
        ujs.pull_subscribe("sluice.tasks.>", stream=messaging.TASKS_STREAM),
        ujs.find_stream_name_by_subject("sluice.events.alpha.x"),
        ujs.delete_stream("SLUICE_EVENTS_alpha"),
        ujs.add_stream(StreamConfig(name="MINE", subjects=["mine.>"])),
    ):
        with pytest.raises((nats.errors.Error, TimeoutError)):
            await asyncio.wait_for(attempt, 1.5)
    # What JetStream sends for the key stays in its workspace's account, whatever subject the
    # key names: a push consumer delivering into the results subjects, a reply subject there.
    await ujs.add_consumer("SLUICE_EVENTS_alpha", ConsumerConfig(deliver_subject="sluice.results.forged"))
    await nc.publish("$JS.API.STREAM.INFO.SLUICE_EVENTS_alpha", b"", reply="sluice.tasks.cpu.forged")
    await nc.publish("sluice.events.alpha.job_completed", b"forged")  # no event of its own either
    await nc.flush()
    await asyncio.sleep(1.0)
    assert seen_by_services == []
    assert (await js.stream_info(messaging.RESULTS_STREAM)).state.messages == 0
    assert (await js.stream_info(messaging.TASKS_STREAM)).state.messages == 0

    expected = [
        f'subscription to "{s}"' for s in ("sluice.events.beta.>", "sluice.tasks.>", "sluice.results.>")
    ]
    expected += ['subscription to "_inbox.>"', 'subscription to ">"', "consumer.create.sluice_events_beta"]
    expected += [
        "stream.names",
        "stream.delete.sluice_events_alpha",
        'publish to "sluice.events.alpha.job_completed"',
    ]
    for _ in range(50):  # the server's refusals come back asynchronously
        if all(e in client.violations() for e in expected):
            break
        await asyncio.sleep(0.1)
    missing = [e for e in expected if e not in client.violations()]
    assert not missing, client.violations()
    for workspace, kept in (("alpha", 2 + probes), ("beta", 2)):  # its own events, nothing forged
        info = await messaging.events_jetstream(js, workspace).stream_info(f"SLUICE_EVENTS_{workspace}")
        assert info.state.messages == kept
    await nc.close()


async def test_a_deleted_events_stream_is_made_again(
    secured_nats: SecuredNats, pool: asyncpg.Pool, services: Client
) -> None:
    await new_key(pool, "alpha")
    await synced(pool, secured_nats)
    js = services.jetstream()
    await messaging.publish_event(js, event("alpha", "j", events_pb2.EVENT_TYPE_JOB_CREATED), "job_created")
    alpha = messaging.events_jetstream(js, "alpha")
    await alpha.delete_stream("SLUICE_EVENTS_alpha")
    await messaging.publish_event(js, event("alpha", "j", events_pb2.EVENT_TYPE_JOB_FAILED), "job_failed")
    info = await alpha.stream_info("SLUICE_EVENTS_alpha")
    assert info.state.messages == 1
    assert info.config.max_age == pytest.approx(secured_nats.settings.events_max_age_s)
