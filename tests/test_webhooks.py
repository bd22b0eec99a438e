"""Signed webhooks: the signature, the outbox delivering to a real HTTP receiver, and the whole
local stack POSTing a job's and a batch's events (docs/webhooks.md)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import cv2
import grpc
import pytest

from sluice import auth_schema, db, webhook_addresses, webhooks
from sluice.errors import InvalidArgument
from sluice.v1 import common_pb2, events_pb2, scheduler_pb2, staging_pb2
from sluice.workspaces import webhook_secret
from tests.images import photographs
from tests.local_stack import local_stack, sluice
from tests.scheduler_mesh import Mesh

ROOT = Path(__file__).resolve().parent.parent
DETECTION = ROOT / "examples" / "workflows" / "text-detection.json"
SECRET = "whsec_test_secret"


# A real HTTP receiver


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> dict[str, object]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """http.server in a thread on `port`; `answer(body)` chooses each reply's status."""

    port: int
    answer: Callable[[dict[str, object]], int] = lambda body: 200
    delay_s: float = 0.0
    got: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/sluice?token=not-for-logs"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(receiver.delay_s)
                with receiver._lock:
                    status = receiver.answer(json.loads(body))
                    receiver.got.append(Received(dict(self.headers.items()), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the port: deliveries meet a refused connection."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self) -> list[dict[str, object]]:
        """The bodies answered 2xx, in arrival order."""
        with self._lock:
            return [r.json for r in self.got if 200 <= r.status < 300]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port()).start()
    yield r
    r.stop()


def an_event(batch_id: str = "b", n: int = 0) -> events_pb2.Event:
    event = events_pb2.Event(
        event_id=f"event-{batch_id}-{n}",
        type=events_pb2.EVENT_TYPE_BATCH_INGESTED,
        workspace="alpha",
        batch_id=batch_id,
        state="ingested",
        message=f"{n} files stored",
        items_done=n,
        items_total=n,
    )
    event.time.GetCurrentTime()
    return event


# Signatures, bodies, URLs


def test_a_signature_verifies_only_under_its_secret_body_and_time() -> None:
    body = webhooks.event_body(an_event(n=3), "batch_ingested", 1)
    headers = webhooks.signed_headers(SECRET, body, "event-b-3", timestamp=1_700_000_000)
    stamp, signature = headers["Sluice-Timestamp"], headers["Sluice-Signature"]
    assert re.fullmatch(r"v1=[0-9a-f]{64}", signature)
    webhooks.verify(SECRET, body, stamp, signature, now=1_700_000_010)
    cases = {
        "another secret": (("whsec_other", body, stamp, signature), {}),
        "changed body": ((SECRET, body.replace(b'"items_done":3', b'"items_done":4'), stamp, signature), {}),
        "changed timestamp": ((SECRET, body, str(int(stamp) + 1), signature), {}),
        "old timestamp": ((SECRET, body, stamp, signature), {"now": 1_700_000_000 + 301}),
        "no signature": ((SECRET, body, stamp, None), {}),
    }
    for what, (args, kwargs) in cases.items():
        with pytest.raises(webhooks.SignatureError):
            webhooks.verify(*args, now=kwargs.get("now", 1_700_000_010))  # type: ignore[arg-type]
            pytest.fail(f"{what} verified")
    # Any of several offered signatures may match (a receiver rotating secrets).
    webhooks.verify(SECRET, body, stamp, f"v1={'0' * 64}, {signature}", now=1_700_000_010)


def test_the_body_carries_the_documented_fields() -> None:
    event = events_pb2.Event(
        event_id="e1",
        type=events_pb2.EVENT_TYPE_JOB_COMPLETED,
        workspace="alpha",
        job_id="j1",
        stage="export",
        state="completed",
        attempt=2,
        machine_seconds=12.3456,
        items_done=5,
        items_total=5,
        message="completed",
    )
    event.time.FromJsonString("2024-05-01T12:00:00.250Z")
    body = json.loads(webhooks.event_body(event, "job_completed", 3))
    assert body == {
        "type": "job_completed",
        "event_id": "e1",
        "workspace": "alpha",
        "job_id": "j1",
        "stage": "export",
        "attempt": 2,
        "state": "completed",
        "time": "2024-05-01T12:00:00.250Z",
        "delivery_attempt": 3,
        "items_done": 5,
        "items_total": 5,
        "message": "completed",
        "machine_seconds": 12.346,
    }
    batch = json.loads(webhooks.event_body(an_event("photos", 2), "batch_ingested", 1))
    assert batch["batch_id"] == "photos" and "job_id" not in batch and batch["state"] == "ingested"


def test_notification_urls_are_checked_and_shown_without_their_query() -> None:
    assert (
        webhooks.validate_url("https://hooks.example.com/x?token=abc")
        == "https://hooks.example.com/x?token=abc"
    )
    for bad, said in [
        ("ftp://hooks.example.com/x?token=abc", "http:// or https://"),
        ("hooks.example.com/x?token=abc", "http:// or https://"),
        ("https:///x?token=abc", "must name a host"),
        ("https://user:pw@hooks.example.com/?token=abc", "user name or password"),
        ("https://hooks.example.com/a b?token=abc", "spaces"),
        ("https://hooks.example.com:99999/?token=abc", "not a valid URL"),
    ]:
        with pytest.raises(InvalidArgument) as refused:
            webhooks.validate_url(bad)
        assert said in refused.value.message
        assert "abc" not in refused.value.message and "pw" not in refused.value.message
    assert (
        webhooks.display_url("https://hooks.example.com:8443/x/y?token=abc")
        == "https://hooks.example.com:8443"
    )


def test_backoff_doubles_from_one_second_to_thirty() -> None:
    policy = webhooks.DeliveryPolicy()
    assert [policy.backoff_s(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert policy.timeout_s == 10 and policy.give_up_after_s == 24 * 3600


# The outbox against real Postgres and a real receiver


@pytest.fixture
async def outbox(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.connect(database_url)
    await db.migrate(pool, "staging", "sluice_staging")
    await db.migrate(pool, auth_schema.SCHEMA, auth_schema.PACKAGE)
    yield pool
    await pool.close()


async def deliver_until(
    pool: asyncpg.Pool,
    policy: webhooks.DeliveryPolicy,
    done: Callable[[list[webhooks.Attempt]], bool],
    timeout_s: float = 20.0,
) -> list[webhooks.Attempt]:
    """Run a Deliverer over staging's outbox until `done(attempts so far)`."""
    attempts: list[webhooks.Attempt] = []

    async def record(attempt: webhooks.Attempt) -> None:
        attempts.append(attempt)

    table = webhooks.OutboxTable(pool, "staging.webhook_outbox", "batch_id")
    deliverer = webhooks.Deliverer(table, lambda w: webhook_secret(pool, w), policy, record, "test")
    stop = asyncio.Event()
    running = asyncio.create_task(deliverer.run(stop))
    try:
        deadline = time.monotonic() + timeout_s
        while not done(attempts):
            assert time.monotonic() < deadline, f"attempts so far: {attempts}"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await running
    return attempts


# The receivers are on loopback, which a policy denies unless it allows private addresses.
FAST = webhooks.DeliveryPolicy(
    timeout_s=2.0, first_backoff_s=0.1, max_backoff_s=0.3, poll_s=0.1, private_addresses=True
)


async def test_the_outbox_keeps_order_per_batch_retries_and_runs_batches_in_parallel(
    outbox: asyncpg.Pool, receiver: Receiver
) -> None:
    table = webhooks.OutboxTable(outbox, "staging.webhook_outbox", "batch_id")
    tries: dict[object, int] = {}

    def answer(body: dict[str, object]) -> int:
        tries[body["event_id"]] = tries.get(body["event_id"], 0) + 1
        return 500 if body["event_id"] == "event-a-0" and tries[body["event_id"]] <= 2 else 200

    receiver.answer = answer
    for n in range(3):
        await table.add(an_event("a", n), "batch_ingested", receiver.url, "a")
    await table.add(an_event("b", 0), "batch_ingested", receiver.url, "b")
    attempts = await deliver_until(outbox, FAST, lambda got: sum(a.outcome.delivered for a in got) == 4)
    order = [str(b["event_id"]) for b in receiver.delivered()]
    assert [e for e in order if e.startswith("event-a")] == ["event-a-0", "event-a-1", "event-a-2"]
    assert order.index("event-b-0") < order.index("event-a-0"), "b waited for a's retries"
    first = [r for r in receiver.got if r.json["event_id"] == "event-a-0"]
    assert [(r.status, r.json["delivery_attempt"]) for r in first] == [(500, 1), (500, 2), (200, 3)]
    for r in receiver.got:  # each try is signed anew, under the workspace's secret
        secret = await outbox.fetchval("SELECT webhook_secret FROM auth.workspaces WHERE workspace='alpha'")
        webhooks.verify(secret, r.body, r.headers["Sluice-Timestamp"], r.headers["Sluice-Signature"])
        assert r.headers["Sluice-Event-Id"] == r.json["event_id"]
    lines = [webhooks.attempt_line(a) for a in attempts if a.row.event.event_id == "event-a-0"]
    assert lines[0].startswith("webhook batch_ingested attempt 1: HTTP 500, retrying in 0.1 s"), lines
    assert lines[2] == "webhook batch_ingested attempt 3: delivered (HTTP 200)", lines
    row = await outbox.fetchrow("SELECT * FROM staging.webhook_outbox WHERE event_id='event-a-0'")
    assert row["attempts"] == 3 and row["last_result"] == "HTTP 200" and row["delivered_at"] is not None


async def test_a_receiver_down_or_slow_gets_every_event_in_order_once_back(
    outbox: asyncpg.Pool, receiver: Receiver
) -> None:
    table = webhooks.OutboxTable(outbox, "staging.webhook_outbox", "batch_id")
    receiver.stop()  # the port is closed
    for n in range(4):
        await table.add(an_event("a", n), "batch_ingested", receiver.url, "a")

    def back_after_failures(got: list[webhooks.Attempt]) -> bool:
        if len(got) >= 3 and receiver._server is None:
            assert all(a.outcome.detail == "connection refused" for a in got)
            receiver.delay_s = 3.0  # back, but slower than the timeout at first
            receiver.start()
        if receiver._server is not None and any("timed out" in a.outcome.detail for a in got):
            receiver.delay_s = 0.0
        return sum(a.outcome.delivered for a in got) == 4

    attempts = await deliver_until(outbox, FAST, back_after_failures, timeout_s=30)
    assert any(a.outcome.detail == "timed out after 2 s" for a in attempts)
    assert [b["event_id"] for b in receiver.delivered()] == [f"event-a-{n}" for n in range(4)]


async def test_an_event_is_given_up_after_its_time_and_the_next_goes_on(
    outbox: asyncpg.Pool, receiver: Receiver
) -> None:
    table = webhooks.OutboxTable(outbox, "staging.webhook_outbox", "batch_id")
    receiver.answer = lambda body: 503 if body["event_id"] == "event-a-0" else 200
    await table.add(an_event("a", 0), "batch_ingested", receiver.url, "a")
    await table.add(an_event("a", 1), "batch_ingested", receiver.url, "a")
    policy = webhooks.DeliveryPolicy(
        timeout_s=2,
        first_backoff_s=0.1,
        max_backoff_s=0.2,
        give_up_after_s=1,
        poll_s=0.1,
        private_addresses=True,
    )
    attempts = await deliver_until(outbox, policy, lambda got: any(a.outcome.delivered for a in got))
    gave_up = [a for a in attempts if a.gave_up]
    assert len(gave_up) == 1 and gave_up[0].row.event.event_id == "event-a-0"
    assert webhooks.attempt_line(gave_up[0]).endswith(
        f"HTTP 503; giving up after {gave_up[0].number} attempts"
    )
    assert [b["event_id"] for b in receiver.delivered()] == ["event-a-1"]
    row = await outbox.fetchrow("SELECT * FROM staging.webhook_outbox WHERE event_id='event-a-0'")
    assert row["given_up_at"] is not None and row["delivered_at"] is None


async def test_rows_delivered_or_given_up_long_ago_are_deleted_and_the_rest_kept(
    outbox: asyncpg.Pool,
) -> None:
    table = webhooks.OutboxTable(outbox, "staging.webhook_outbox", "batch_id")
    ages = {"delivered-old": 8, "given-up-old": 8, "delivered-new": 1, "open-old": 30}
    for n, name in enumerate(ages):
        await table.add(an_event(name, n), "batch_ingested", "https://hooks.example.com/x", name)
    for name, days in ages.items():
        column = {"delivered": "delivered_at", "given": "given_up_at"}.get(name.split("-")[0])
        when = f"now() - make_interval(days => {days})"
        assigned = f"created_at = {when}" + (f", {column} = {when}" if column else "")
        # the open row is never due: no attempt is made while the deliverer runs below
        await outbox.execute(
            f"UPDATE staging.webhook_outbox SET {assigned}, next_attempt_at = now() + interval '1 day' "
            "WHERE batch_id = $1",
            name,
        )
    policy = dataclasses.replace(FAST, keep_s=7 * 86400.0)
    stop = asyncio.Event()
    deliverer = webhooks.Deliverer(table, lambda w: webhook_secret(outbox, w), policy, record_nothing, "test")
    running = asyncio.create_task(deliverer.run(stop))  # prunes as it starts
    for _ in range(50):
        left = {r["batch_id"] for r in await outbox.fetch("SELECT batch_id FROM staging.webhook_outbox")}
        if len(left) < len(ages):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await running
    assert left == {"delivered-new", "open-old"}
    assert await table.prune(0.5 * 86400.0) == 1  # now the day-old delivered row too
    assert {r["batch_id"] for r in await outbox.fetch("SELECT batch_id FROM staging.webhook_outbox")} == {
        "open-old"
    }


async def record_nothing(attempt: webhooks.Attempt) -> None:
    raise AssertionError(f"no attempt was due: {attempt}")


def test_the_outbox_keeps_rows_seven_days_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_WEBHOOK_KEEP_DAYS", raising=False)
    assert webhooks.DeliveryPolicy.from_env().keep_s == 7 * 86400.0
    monkeypatch.setenv("SLUICE_WEBHOOK_KEEP_DAYS", "0.5")
    assert webhooks.DeliveryPolicy.from_env().keep_s == 43200.0
    for bad in ("0", "-1", "nan", "inf", "week"):
        monkeypatch.setenv("SLUICE_WEBHOOK_KEEP_DAYS", bad)
        with pytest.raises(
            SystemExit, match=f"SLUICE_WEBHOOK_KEEP_DAYS must be a positive number of days, not '{bad}'"
        ):
            webhooks.DeliveryPolicy.from_env()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # a cloud's metadata service
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1%eth0",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "ff02::1",
    ],
)
def test_addresses_that_are_not_public_are_refused(address: str) -> None:
    assert not webhook_addresses.is_public(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert webhook_addresses.is_public(address)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("https://127.0.0.1:9/hook?token=t", "127.0.0.1"),  # refused before TLS
        ("http://[::1]:9/hook", "::1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ],
)
def test_post_sends_nothing_to_an_address_that_is_not_public(url: str, address: str) -> None:
    outcome = webhooks.post(url, b"{}", {}, timeout_s=1.0)
    assert not outcome.delivered and outcome.final
    assert outcome.detail.startswith(
        f"not sent: {address} resolves to {address}, which is not a public address"
    )
    assert "token" not in outcome.detail


def test_the_private_addresses_setting_is_deny_allow_or_refused() -> None:
    env = webhook_addresses.PRIVATE_ADDRESSES_ENV
    assert webhook_addresses.private_addresses_allowed({}) is False
    assert webhook_addresses.private_addresses_allowed({env: "deny"}) is False
    assert webhook_addresses.private_addresses_allowed({env: "allow"}) is True
    with pytest.raises(SystemExit, match=f"{env} must be 'deny' or 'allow', not 'yes'"):
        webhook_addresses.private_addresses_allowed({env: "yes"})


async def test_a_url_that_reaches_a_private_address_is_given_up_at_once_and_nothing_is_sent(
    outbox: asyncpg.Pool, receiver: Receiver
) -> None:
    table = webhooks.OutboxTable(outbox, "staging.webhook_outbox", "batch_id")
    by_name = receiver.url.replace("127.0.0.1", "localhost")
    await table.add(an_event("p", 0), "batch_ingested", receiver.url, "p")
    await table.add(an_event("p", 1), "batch_ingested", by_name, "p")
    deny = dataclasses.replace(FAST, private_addresses=False)
    attempts = await deliver_until(outbox, deny, lambda got: len(got) == 2)
    await asyncio.sleep(0.5)  # no retry comes after
    assert receiver.got == []
    assert [(a.number, a.gave_up, a.outcome.delivered) for a in attempts] == [(1, True, False)] * 2
    lines = [webhooks.attempt_line(a) for a in attempts]
    assert lines[0] == (
        "webhook batch_ingested attempt 1: not sent: 127.0.0.1 resolves to 127.0.0.1, which is not a"
        " public address (SLUICE_WEBHOOK_PRIVATE_ADDRESSES=allow lets webhooks reach private addresses);"
        " giving up after 1 attempt"
    )
    assert "not sent: localhost resolves to " in lines[1] and "token" not in lines[1]
    rows = await outbox.fetch("SELECT * FROM staging.webhook_outbox WHERE batch_id='p' ORDER BY id")
    assert [(r["attempts"], r["delivered_at"], r["given_up_at"] is not None) for r in rows] == [
        (1, None, True)
    ] * 2

    await table.add(an_event("p", 2), "batch_ingested", by_name, "p")
    await deliver_until(outbox, FAST, lambda got: any(a.outcome.delivered for a in got))
    assert [b["event_id"] for b in receiver.delivered()] == ["event-p-2"]


# The whole local stack


@pytest.fixture(scope="module")
def state() -> Iterator[Path]:
    # Retries capped at 1 s, so a receiver that comes back is served within a second.
    saved = os.environ.get("SLUICE_WEBHOOK_MAX_BACKOFF_S")
    os.environ["SLUICE_WEBHOOK_MAX_BACKOFF_S"] = "1"
    try:
        yield from local_stack("sluice-webhooks-")
    finally:
        if saved is None:
            os.environ.pop("SLUICE_WEBHOOK_MAX_BACKOFF_S", None)
        else:
            os.environ["SLUICE_WEBHOOK_MAX_BACKOFF_S"] = saved


@pytest.fixture(scope="module")
def photos(state: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A batch of two small photographs and the text-detection workflow."""
    folder = tmp_path_factory.mktemp("photos")
    for i, photo in enumerate(photographs()[:2]):
        cv2.imwrite(str(folder / f"p{i}.jpg"), cv2.resize(photo, (160, 120)))
    sluice(state, "data-staging", "create-batch-of-images", "--images-dir", str(folder), "--batch-id", "two")
    sluice(state, "workflows", "create", "--workflow-id", "detect", "--file", str(DETECTION))
    return "two"


def workspace_secret(state: Path) -> str:
    out = sluice(state, "admin", "show-workspace").stdout
    found = re.search(r"^webhook_secret: (\S+)$", out, re.MULTILINE)
    assert found, out
    return found.group(1)


def run_job(state: Path, batch: str, job_id: str, url: str) -> None:
    sluice(
        state,
        "batch-processing",
        "process-images-with-workflow",
        "--workflow-id",
        "detect",
        "--batch-id",
        batch,
        "--job-id",
        job_id,
        "--notifications-url",
        url,
        "--wait",
        timeout_s=300,
    )


def stream_kinds(state: Path, job_id: str) -> list[str]:
    """The kinds of the job's events in the events stream, oldest first (`sluice events`)."""
    lines = sluice(state, "events", "--job-id", job_id).stdout.splitlines()
    return [line.split()[2] for line in lines]


def assert_a_whole_job(bodies: list[dict[str, object]], job_id: str) -> None:
    """One job's events, in the order they happened: created, started, ..., completed."""
    assert [b["job_id"] for b in bodies] == [job_id] * len(bodies)
    kinds = [b["type"] for b in bodies]
    assert kinds[0] == "job_created" and kinds[-1] == "job_completed", kinds
    started = [b["stage"] for b in bodies if b["type"] == "stage_started"]
    assert started == ["processing", "export"], kinds
    assert set(kinds) <= {"job_created", "stage_started", "progress", "job_completed"}, kinds
    assert len({b["event_id"] for b in bodies}) == len(bodies), "an event came twice"
    times = [str(b["time"]) for b in bodies]
    assert times == sorted(times), times
    assert bodies[0]["state"] == "queued" and bodies[-1]["state"] == "completed"
    assert bodies[-1]["items_done"] == bodies[-1]["items_total"] == 2
    assert all(b["attempt"] == 1 for b in bodies)


@pytest.mark.e2e
def test_a_job_posts_every_event_in_order_signed_with_the_workspace_secret(
    state: Path, photos: str, receiver: Receiver
) -> None:
    run_job(state, photos, "hooked", receiver.url)
    wait_until(lambda: any(b["type"] == "job_completed" for b in receiver.delivered()), 30, "job_completed")
    secret = workspace_secret(state)
    for r in receiver.got:
        webhooks.verify(secret, r.body, r.headers["Sluice-Timestamp"], r.headers["Sluice-Signature"])
        assert r.headers["Content-Type"] == "application/json"
    bodies = receiver.delivered()
    assert_a_whole_job(bodies, "hooked")
    assert all(b["delivery_attempt"] == 1 for b in bodies)
    assert [b["type"] for b in bodies] == stream_kinds(state, "hooked"), "not every event came"
    details = sluice(state, "batch-processing", "show-job-details", "--job-id", "hooked").stdout
    assert f"http://127.0.0.1:{receiver.port}" in details and "not-for-logs" not in details
    logs = sluice(state, "batch-processing", "fetch-logs", "--job-id", "hooked").stdout
    assert "webhook job_completed attempt 1: delivered (HTTP 200)" in logs, logs
    scheduler_log = (state / "logs" / "scheduler.log").read_text()
    assert "not-for-logs" not in scheduler_log


@pytest.mark.e2e
def test_a_receiver_answering_500_twice_gets_the_event_on_the_third_attempt(
    state: Path, photos: str, receiver: Receiver
) -> None:
    failed: dict[object, int] = {}

    def answer(body: dict[str, object]) -> int:
        if body["type"] != "job_created":
            return 200
        failed[body["event_id"]] = failed.get(body["event_id"], 0) + 1
        return 500 if failed[body["event_id"]] <= 2 else 200

    receiver.answer = answer
    run_job(state, photos, "retried", receiver.url)
    wait_until(lambda: any(b["type"] == "job_completed" for b in receiver.delivered()), 60, "job_completed")
    created = [r for r in receiver.got if r.json["type"] == "job_created"]
    assert [(r.status, r.json["delivery_attempt"]) for r in created] == [(500, 1), (500, 2), (200, 3)]
    assert len({r.headers["Sluice-Signature"] for r in created}) == 3, "each attempt is signed anew"
    assert_a_whole_job(receiver.delivered(), "retried")
    logs = sluice(state, "batch-processing", "fetch-logs", "--job-id", "retried").stdout
    print(
        "[webhook retries]", *(line for line in logs.splitlines() if "webhook job_created" in line), sep="\n"
    )
    for line in (
        "webhook job_created attempt 1: HTTP 500",
        "webhook job_created attempt 2: HTTP 500",
        "webhook job_created attempt 3: delivered",
    ):
        assert line in logs, logs


@pytest.mark.e2e
def test_a_receiver_down_for_a_while_gets_every_event_in_order_once_back(
    state: Path, photos: str, receiver: Receiver
) -> None:
    receiver.stop()
    run_job(state, photos, "missed", receiver.url)  # the job ends while nobody listens
    logs = sluice(state, "batch-processing", "fetch-logs", "--job-id", "missed").stdout
    assert "webhook job_created attempt 1: connection refused" in logs, logs
    time.sleep(3)
    receiver.start()
    wait_until(lambda: any(b["type"] == "job_completed" for b in receiver.delivered()), 30, "job_completed")
    assert_a_whole_job(receiver.delivered(), "missed")
    assert [b["type"] for b in receiver.delivered()] == stream_kinds(state, "missed")
    print(f"[receiver down] delivered in order once back: {[b['type'] for b in receiver.delivered()]}")


@pytest.mark.e2e
def test_a_batch_posts_created_and_ingested(state: Path, receiver: Receiver, tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "one.jpg"), cv2.resize(photographs()[0], (64, 64)))
    args = [
        "data-staging",
        "create-batch-of-images",
        "--images-dir",
        str(tmp_path),
        "--batch-id",
        "hooked-batch",
    ]
    sluice(state, *args, "--notifications-url", receiver.url)
    wait_until(lambda: len(receiver.delivered()) >= 2, 30, "batch_created and batch_ingested")
    bodies = receiver.delivered()
    assert [(b["type"], b["state"], b["batch_id"]) for b in bodies] == [
        ("batch_created", "created", "hooked-batch"),
        ("batch_ingested", "ingested", "hooked-batch"),
    ]
    assert bodies[1]["items_done"] == 1
    secret = workspace_secret(state)
    for r in receiver.got:
        webhooks.verify(secret, r.body, r.headers["Sluice-Timestamp"], r.headers["Sluice-Signature"])
    details = sluice(state, "data-staging", "show-batch-details", "--batch-id", "hooked-batch").stdout
    assert f"http://127.0.0.1:{receiver.port}" in details and "not-for-logs" not in details
    refused = sluice(state, *args, "--notifications-url", "ftp://example.com/?token=x", check=False)
    assert refused.returncode != 0 and "http:// or https://" in refused.stderr
    staging_log = (state / "logs" / "staging.log").read_text()
    assert "webhook batch_ingested attempt 1: delivered (HTTP 200)" in staging_log
    assert "not-for-logs" not in staging_log


# The services in this process (tests/scheduler_mesh.py): refusals, and an aborted job


async def test_bad_urls_are_refused_and_an_aborted_job_posts_its_events(
    mesh: Mesh, receiver: Receiver
) -> None:
    scheduler, staging = mesh.scheduler_stub(), mesh.staging_stub()
    for bad in ("ftp://example.com/?token=secret-1", "https:///x?token=secret-1"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await scheduler.CreateJob(
                scheduler_pb2.CreateJobRequest(workflow_id="wf", batch_id="pics", notifications_url=bad),
                metadata=mesh.md(),
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "notifications URL" in (refused.value.details() or "")
        assert "secret-1" not in (refused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await staging.CreateBatch(
                staging_pb2.CreateBatchRequest(
                    batch_id="other", type=common_pb2.BATCH_TYPE_IMAGES, notifications_url=bad
                ),
                metadata=mesh.md(),
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    job = await scheduler.CreateJob(
        scheduler_pb2.CreateJobRequest(
            workflow_id="wf", batch_id="pics", job_id="halted", notifications_url=receiver.url
        ),
        metadata=mesh.md(),
    )
    assert job.notifications_url == receiver.url
    await scheduler.AbortJob(scheduler_pb2.AbortJobRequest(job_id="halted"), metadata=mesh.md())
    for _ in range(100):
        if len(receiver.delivered()) >= 2:
            break
        await asyncio.sleep(0.1)
    assert [(b["type"], b["state"]) for b in receiver.delivered()] == [
        ("job_created", "queued"),
        ("job_aborted", "aborted"),
    ]
    assert receiver.delivered()[1]["message"] == "aborted by its owner"
