"""Signed webhooks: an event as JSON, its signature, and delivering an outbox in order.

A job or batch created with a notifications URL gets each of its events POSTed there. The body
is JSON (`event_body`); headers `Sluice-Timestamp` (unix seconds), `Sluice-Signature`
(`v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`, the workspace's webhook secret) and
`Sluice-Event-Id`. `verify` is what a receiver runs. docs/webhooks.md is the contract.

Delivery goes through an outbox table per service (`OutboxTable`): a row is written where the
event is published, and `Deliverer` POSTs the rows, in order per job or batch (the next waits
until the previous one is delivered or given up), different jobs in parallel, retrying any
non-2xx answer, timeout or connection error with a backoff (1 s doubling to 30 s) for 24 h; a
host that is not a public address is given up at once unless private addresses are allowed
(sluice.webhook_addresses).
Rows are durable, so a restart loses nothing; each attempt is handed to the service to record.
Rows delivered or given up are deleted after `DeliveryPolicy.keep_s` (7 days by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from sluice.v1 import events_pb2
from sluice.webhook_addresses import ForbiddenAddress, private_addresses_allowed, public_only_handlers

# The URL rules live apart (the CLI and the dashboard need them without asyncpg); kept here too.
from sluice.webhook_urls import MAX_URL_LENGTH as MAX_URL_LENGTH
from sluice.webhook_urls import display_url as display_url
from sluice.webhook_urls import validate_url as validate_url

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "Sluice-Timestamp"
SIGNATURE_HEADER = "Sluice-Signature"
EVENT_ID_HEADER = "Sluice-Event-Id"
SIGNATURE_VERSION = "v1"
# A receiver refuses signatures older (or newer) than this: a replayed request is refused.
DEFAULT_TOLERANCE_S = 300
USER_AGENT = "Sluice-Webhooks/1"
# On stop, deliveries under way get this long to end; the others' rows are given back.
STOP_GRACE_S = 2.0


# Body and signature


def _rfc3339(event: events_pb2.Event) -> str:
    when = event.time.ToDatetime(tzinfo=UTC) if event.HasField("time") else datetime.now(UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_body(event: events_pb2.Event, kind: str, delivery_attempt: int) -> bytes:
    """The JSON body POSTed for `event` (of kind `kind`, e.g. job_completed) on its
    `delivery_attempt`-th try; docs/webhooks.md lists the fields."""
    body: dict[str, object] = {
        "type": kind,
        "event_id": event.event_id,
        "workspace": event.workspace,
    }
    if event.job_id:
        body.update(job_id=event.job_id, stage=event.stage, attempt=event.attempt)
    else:
        body["batch_id"] = event.batch_id
    body.update(
        state=event.state,
        time=_rfc3339(event),
        delivery_attempt=delivery_attempt,
        items_done=event.items_done,
        items_total=event.items_total,
        message=event.message,
    )
    if event.job_id:
        body["machine_seconds"] = round(event.machine_seconds, 3)
    return json.dumps(body, separators=(",", ":")).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The Sluice-Signature value: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def signed_headers(secret: str, body: bytes, event_id: str, timestamp: int | None = None) -> dict[str, str]:
    """Every header of a delivery, signed now (or at `timestamp`)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: sign(secret, stamp, body),
        EVENT_ID_HEADER: event_id,
    }


class SignatureError(ValueError):
    """A webhook request whose signature does not verify; the message says why."""


def verify(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check a received webhook: `body` is the raw request body, `timestamp` and `signature`
    the Sluice-Timestamp and Sluice-Signature headers. SignatureError when it was not signed
    with `secret`, the body was changed, or it is older (or newer) than `tolerance_s`."""
    if not timestamp or not signature:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        stamp = int(timestamp)
    except ValueError:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not a number of seconds") from None
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance_s:
        raise SignatureError(f"timestamp is {current - stamp:.0f} s away from now (replayed?)")
    expected = sign(secret, stamp, body)
    offered = [part.strip() for part in signature.split(",")]
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise SignatureError("signature does not match (another secret, or the body was changed)")


# Delivery policy and one POST


def _env_positive(name: str, default: float, unit: str) -> float:
    value = os.environ.get(f"SLUICE_{name}", "")
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0 or number == float("inf"):
        raise SystemExit(f"SLUICE_{name} must be a positive number of {unit}, not {value!r}")
    return number


def _env_seconds(name: str, default: float) -> float:
    return _env_positive(name, default, "seconds")


def _env_days(name: str, default_s: float) -> float:
    """SLUICE_<name> in days, as seconds."""
    return _env_positive(name, default_s / 86400.0, "days") * 86400.0


@dataclass(frozen=True)
class DeliveryPolicy:
    """How long a POST may take, how retries back off, and when to give up."""

    timeout_s: float = 10.0
    first_backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    give_up_after_s: float = 24 * 3600.0
    poll_s: float = 1.0
    concurrency: int = 16
    private_addresses: bool = False
    """Whether a URL may reach loopback, private, link-local or other non-public addresses
    (sluice.webhook_addresses)."""
    keep_s: float = 7 * 86400.0
    """How long a delivered or given-up row stays in the outbox (then it is deleted)."""
    prune_every_s: float = 3600.0

    @classmethod
    def from_env(cls) -> DeliveryPolicy:
        """SLUICE_WEBHOOK_TIMEOUT_S, SLUICE_WEBHOOK_MAX_BACKOFF_S, SLUICE_WEBHOOK_GIVE_UP_AFTER_S,
        SLUICE_WEBHOOK_PRIVATE_ADDRESSES, SLUICE_WEBHOOK_KEEP_DAYS."""
        return cls(
            timeout_s=_env_seconds("WEBHOOK_TIMEOUT_S", cls.timeout_s),
            max_backoff_s=_env_seconds("WEBHOOK_MAX_BACKOFF_S", cls.max_backoff_s),
            give_up_after_s=_env_seconds("WEBHOOK_GIVE_UP_AFTER_S", cls.give_up_after_s),
            private_addresses=private_addresses_allowed(),
            keep_s=_env_days("WEBHOOK_KEEP_DAYS", cls.keep_s),
        )

    def backoff_s(self, failed_attempts: int) -> float:
        """The wait after the `failed_attempts`-th failure: 1 s, 2 s, 4 s, ... at most the cap."""
        exponent = min(max(failed_attempts - 1, 0), 30)
        return float(min(self.first_backoff_s * 2**exponent, self.max_backoff_s))

    @property
    def lease_s(self) -> float:
        """How long a claimed row is kept from other deliverers (a crashed one's comes back)."""
        return self.timeout_s + 30.0


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    detail: str
    """"HTTP 200", "HTTP 500", "timed out after 10 s", "connection refused", ..."""
    final: bool = False
    """A failure no retry mends (the host is not a public address): given up at once."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer other than 2xx: it is retried, not followed."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host ({error.strerror or error})"
    if isinstance(error, OSError) and error.strerror:
        return f"connection failed: {error.strerror.lower()}"
    if isinstance(error, http.client.HTTPException):
        return f"bad HTTP answer ({type(error).__name__})"
    return f"connection failed ({type(error).__name__})"


def post(
    url: str, body: bytes, headers: Mapping[str, str], timeout_s: float, private_addresses: bool = False
) -> Outcome:
    """POST once (blocking); delivered when the answer is 2xx. Unless `private_addresses`, only
    to public addresses (a host that resolves to another is a final failure). The detail never
    holds the URL's path or query."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    guard = [] if private_addresses else public_only_handlers()
    opener = urllib.request.build_opener(_NoRedirects(), *guard)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            status = int(response.status)  # the body is not read: a trickling one holds no thread
    except urllib.error.HTTPError as error:
        with contextlib.suppress(Exception):
            error.close()
        return Outcome(False, f"HTTP {error.code}")
    except urllib.error.URLError as error:
        reason = error.reason if isinstance(error.reason, BaseException) else None
        if isinstance(reason, ForbiddenAddress):
            return Outcome(False, f"not sent: {reason}", final=True)
        text = _reason(reason) if reason is not None else "connection failed"
        return Outcome(False, f"{text} after {timeout_s:g} s" if text == "timed out" else text)
    except (OSError, http.client.HTTPException) as error:
        text = _reason(error)
        return Outcome(False, f"{text} after {timeout_s:g} s" if text == "timed out" else text)
    return Outcome(200 <= status < 300, f"HTTP {status}")


# The outbox


@dataclass(frozen=True)
class OutboxRow:
    id: int
    workspace: str
    subject_id: str
    """The job id (scheduler) or batch id (staging) whose events go out in order."""
    kind: str
    url: str
    event: events_pb2.Event
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt did, for the service to record."""

    row: OutboxRow
    number: int
    outcome: Outcome
    retry_in_s: float | None
    """Seconds until the next attempt; None when delivered or given up."""
    gave_up: bool = False


class OutboxTable:
    """The SQL of one outbox table: (id, workspace, <key>, event_id, kind, url, event, created_at,
    attempts, next_attempt_at, last_result, delivered_at, given_up_at); `table` may be
    schema-qualified, `key` is the column the order is kept per (job_id or batch_id)."""

    def __init__(self, pool: asyncpg.Pool, table: str, key: str) -> None:
        self.pool = pool
        self._table = table
        self._key = key

    async def add(self, event: events_pb2.Event, kind: str, url: str, subject_id: str) -> None:
        """Queue `event` for `url` (once per event id)."""
        await self.pool.execute(
            f"INSERT INTO {self._table} (workspace, {self._key}, event_id, kind, url, event) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
            event.workspace,
            subject_id,
            event.event_id,
            kind,
            url,
            event.SerializeToString(),
        )

    async def claim(self, limit: int, lease_s: float) -> list[OutboxRow]:
        """The first undelivered row of each job or batch whose next attempt is due, kept from
        other deliverers for `lease_s` (under SKIP LOCKED, so replicas never share a row)."""
        table, key = self._table, self._key
        rows = await self.pool.fetch(
            f"UPDATE {table} SET next_attempt_at = now() + make_interval(secs => $2) "
            f"WHERE id IN (SELECT o.id FROM {table} o JOIN ("
            f"SELECT DISTINCT ON (workspace, {key}) id FROM {table} "
            "WHERE delivered_at IS NULL AND given_up_at IS NULL "
            f"ORDER BY workspace, {key}, id) head ON head.id = o.id "
            "WHERE o.next_attempt_at <= now() AND o.delivered_at IS NULL AND o.given_up_at IS NULL "
            "ORDER BY o.id LIMIT $1 FOR UPDATE OF o SKIP LOCKED) "
            f"RETURNING id, workspace, {key} AS subject_id, kind, url, event, attempts, created_at",
            limit,
            lease_s,
        )
        return [
            OutboxRow(
                id=r["id"],
                workspace=r["workspace"],
                subject_id=r["subject_id"],
                kind=r["kind"],
                url=r["url"],
                event=events_pb2.Event.FromString(bytes(r["event"])),
                attempts=r["attempts"],
                created_at=r["created_at"],
            )
            for r in sorted(rows, key=lambda r: r["id"])
        ]

    async def release(self, ids: list[int]) -> None:
        """Give claimed rows back at once (a deliverer stopping before their attempt ended)."""
        await self.pool.execute(
            f"UPDATE {self._table} SET next_attempt_at = now() WHERE id = ANY($1::bigint[]) "
            "AND delivered_at IS NULL AND given_up_at IS NULL",
            ids,
        )

    async def record(self, attempt: Attempt) -> None:
        """Keep an attempt's result on its row: delivered, given up, or when to try again."""
        await self.pool.execute(
            f"UPDATE {self._table} SET attempts = $2, last_result = $3, "
            "delivered_at = CASE WHEN $4 THEN now() END, "
            "given_up_at = CASE WHEN $5 THEN now() END, "
            "next_attempt_at = now() + make_interval(secs => $6) WHERE id = $1",
            attempt.row.id,
            attempt.number,
            attempt.outcome.detail,
            attempt.outcome.delivered,
            attempt.gave_up,
            attempt.retry_in_s or 0.0,
        )

    async def prune(self, keep_s: float) -> int:
        """Delete the rows delivered or given up more than `keep_s` ago; how many went."""
        status = await self.pool.execute(
            f"DELETE FROM {self._table} "
            "WHERE coalesce(delivered_at, given_up_at) < now() - make_interval(secs => $1)",
            keep_s,
        )
        return int(status.split()[-1])


SecretLookup = Callable[[str], Awaitable[str]]
AttemptRecorder = Callable[[Attempt], Awaitable[None]]


class Deliverer:
    """POSTs an outbox's rows: in order per job or batch, different ones in parallel."""

    def __init__(
        self,
        table: OutboxTable,
        secret: SecretLookup,
        policy: DeliveryPolicy,
        on_attempt: AttemptRecorder,
        name: str,
    ) -> None:
        self.table = table
        self._secret = secret
        self._policy = policy
        self._on_attempt = on_attempt
        self._name = name
        self._wake = asyncio.Event()
        self._in_flight: dict[asyncio.Task[None], int] = {}
        self._executor: ThreadPoolExecutor | None = None

    def wake(self) -> None:
        """Look for due rows now (a row was just added, or a delivery ended)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop`; deliveries under way when it is set are waited for."""
        from sluice.messaging import QuietFailures  # messaging imports nats; keep this light

        self._executor = ThreadPoolExecutor(self._policy.concurrency, thread_name_prefix=self._name)
        outage = QuietFailures(log, f"{self._name} outbox")
        loop = asyncio.get_running_loop()
        prune_at = loop.time()
        try:
            while not stop.is_set():
                self._wake.clear()
                if loop.time() >= prune_at:
                    prune_at = loop.time() + self._policy.prune_every_s
                    await self._prune()
                free = self._policy.concurrency - len(self._in_flight)
                if free > 0:
                    try:
                        rows = await self.table.claim(free, self._policy.lease_s)
                        outage.succeeded()
                    except (OSError, asyncpg.PostgresError) as error:
                        outage.failed(error)
                        rows = []
                    for row in rows:
                        task = asyncio.create_task(self._deliver(row))
                        self._in_flight[task] = row.id
                        task.add_done_callback(self._forget)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_or_stop(stop), self._policy.poll_s)
        finally:
            await self._stop_deliveries()
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _prune(self) -> None:
        try:
            pruned = await self.table.prune(self._policy.keep_s)
        except (OSError, asyncpg.PostgresError) as error:  # tried again at the next prune
            log.warning("%s outbox: cannot delete old rows: %s", self._name, error)
            return
        if pruned:
            log.info("%s outbox: deleted %d rows delivered or given up long ago", self._name, pruned)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)

    async def _stop_deliveries(self) -> None:
        """Let deliveries under way end for a moment, then give their rows back unattempted."""
        if not self._in_flight:
            return
        _, pending = await asyncio.wait(set(self._in_flight), timeout=STOP_GRACE_S)
        ids = [self._in_flight[task] for task in pending if task in self._in_flight]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if ids:
            with contextlib.suppress(Exception):  # else their lease runs out
                await self.table.release(ids)

    async def _wake_or_stop(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _deliver(self, row: OutboxRow) -> None:
        number = row.attempts + 1
        try:
            outcome = await self._post(row, number)
        except Exception as error:  # a secret that cannot be read counts as a failed attempt
            log.warning("%s webhook %s: %s", self._name, row.kind, type(error).__name__)
            outcome = Outcome(False, f"not sent: {type(error).__name__}")
        attempt = self._attempt(row, number, outcome)
        try:
            await self.table.record(attempt)
        except Exception as error:  # the lease runs out and the row is tried again
            log.warning("cannot record a webhook attempt of %s: %s", row.subject_id, error)
            return
        try:
            await self._on_attempt(attempt)
        except Exception as error:
            log.warning("cannot log a webhook attempt of %s: %s", row.subject_id, error)
        if outcome.delivered or attempt.gave_up:
            self.wake()  # the next event of the same job or batch is due now

    async def _post(self, row: OutboxRow, number: int) -> Outcome:
        secret = await self._secret(row.workspace)
        body = event_body(row.event, row.kind, number)
        headers = signed_headers(secret, body, row.event.event_id)
        loop = asyncio.get_running_loop()
        timeout = self._policy.timeout_s
        private = self._policy.private_addresses
        future = loop.run_in_executor(self._executor, post, row.url, body, headers, timeout, private)
        try:
            # urllib's timeout is per socket operation; a slow trickle is cut off here
            return await asyncio.wait_for(future, timeout + 2.0)
        except TimeoutError:
            return Outcome(False, f"timed out after {timeout:g} s")

    def _attempt(self, row: OutboxRow, number: int, outcome: Outcome) -> Attempt:
        if outcome.delivered:
            return Attempt(row, number, outcome, None)
        age = (datetime.now(UTC) - row.created_at).total_seconds()
        if outcome.final or age >= self._policy.give_up_after_s:
            return Attempt(row, number, outcome, None, gave_up=True)
        return Attempt(row, number, outcome, self._policy.backoff_s(number))


def attempt_line(attempt: Attempt) -> str:
    """One line for a job's logs: "webhook job_completed attempt 2: HTTP 500, retry in 2 s"."""
    head = f"webhook {attempt.row.kind} attempt {attempt.number}"
    if attempt.outcome.delivered:
        return f"{head}: delivered ({attempt.outcome.detail})"
    if attempt.gave_up:
        attempts = f"{attempt.number} attempt{'' if attempt.number == 1 else 's'}"
        return f"{head}: {attempt.outcome.detail}; giving up after {attempts}"
    return f"{head}: {attempt.outcome.detail}, retrying in {attempt.retry_in_s:g} s"
