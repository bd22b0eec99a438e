"""NATS authorization for API keys: the accounts and users file, and reloading nats-server.

Where NATS authorization is on (the local stack), the server's configuration includes one file,
`Settings.nats_users_file`, that only this module writes (the scheduler, at start and after a
workspace or key is created or revoked; `sluice up` writes a first one). It holds:

- account `SLUICE`: the services' user (`Settings.nats_user`, password the internal token, kept as
  a bcrypt hash) with every permission; the work streams live here.
- account `WS_<workspace>` per workspace: its events stream `SLUICE_EVENTS_<workspace>` and one
  user per unrevoked API key of the workspace (name: the key id, password: the API key, kept as
  the bcrypt hash in auth.api_keys). `SLUICE` imports the account's `sluice.events.<workspace>.>`
  (the services publish events into it) and its JetStream API as `$JS.WS_<workspace>.API`.

A key user may subscribe to its workspace's events and to its own inbox `_INBOX_<key id>.>`, and
publish only the JetStream API requests that read its workspace's stream (stream info, one
message, consumers: create, info, delete, next) and their acks and flow control. Since whatever
JetStream sends for a user (to a push consumer's deliver subject, to a request's reply subject)
stays in the user's account, no key can reach a task, a result or another workspace's event,
even by naming one as a deliver or reply subject. docs/events.md is the user's side of this.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import tempfile
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import bcrypt

from sluice.config import Settings
from sluice.messaging import events_account, events_stream, events_subjects
from sluice.stack.processes import cmdline

log = logging.getLogger(__name__)

SERVICE_ACCOUNT = "SLUICE"
# How long the services' account waits for the answers to one JetStream request it sends into
# a workspace's account (a pull request's messages come as several answers).
_RESPONSE_THRESHOLD = "30s"
# nats-server checks the password of every connection again at each reload, and meanwhile the
# services' JetStream API does not answer. A hash of a random secret (the 32-byte token here, the
# API keys' 24 bytes) needs no work factor against guessing: the cheapest cost keeps that short.
SERVICE_BCRYPT_ROUNDS = 4
_KEY_ID = re.compile(r"^key_[0-9a-f]{12}$")
_WORKSPACE = re.compile(r"^[a-z0-9_-]{1,64}$")
_HEADER = (
    "# NATS accounts and users of Sluice: the services and one user per API key (sluice.nats_auth).\n"
    "# Written by the scheduler; edits are lost at its next write.\n"
)


@dataclass(frozen=True)
class NatsUser:
    """The NATS user of one API key."""

    key_id: str
    workspace: str
    password_hash: str  # bcrypt of the API key


def inbox_prefix(key_id: str) -> str:
    """The inbox prefix a key user's client must use (the only inboxes it may subscribe to)."""
    return f"_INBOX_{key_id}"


def key_permissions(key_id: str, workspace: str) -> dict[str, Any]:
    """What the user of key `key_id` may publish and subscribe to, in its workspace's account."""
    stream = events_stream(workspace)
    api = "$JS.API"
    return {
        "publish": {
            "allow": [
                f"{api}.STREAM.INFO.{stream}",
                f"{api}.STREAM.MSG.GET.{stream}",
                f"{api}.CONSUMER.CREATE.{stream}",
                f"{api}.CONSUMER.CREATE.{stream}.>",
                f"{api}.CONSUMER.DURABLE.CREATE.{stream}.>",
                f"{api}.CONSUMER.INFO.{stream}.>",
                f"{api}.CONSUMER.DELETE.{stream}.>",
                f"{api}.CONSUMER.MSG.NEXT.{stream}.>",
                f"$JS.ACK.{stream}.>",
                f"$JS.FC.{stream}.>",
            ]
        },
        "subscribe": {"allow": [events_subjects(workspace), f"{inbox_prefix(key_id)}.>"]},
    }


def render_users(
    users: Iterable[NatsUser],
    *,
    workspaces: Iterable[str] = (),
    service_user: str = "",
    service_password_hash: str = "",
) -> str:
    """The users file: the services' account and user, and an account per workspace (those of
    `workspaces` and of `users`) with its key users. Names that could not be a workspace or a
    key id are left out (they would be subjects and configuration keys)."""
    keys: dict[str, list[NatsUser]] = {}
    for workspace in workspaces:
        keys.setdefault(workspace, [])
    for user in users:
        if _KEY_ID.match(user.key_id) and user.password_hash.startswith("$2"):
            keys.setdefault(user.workspace, []).append(user)
        else:
            log.warning("NATS user of key %r left out: not a key id or no bcrypt hash", user.key_id)
    service: dict[str, Any] = {"jetstream": "enabled", "users": [], "imports": []}
    if service_user:
        service["users"].append({"user": service_user, "password": service_password_hash})
    accounts: dict[str, Any] = {SERVICE_ACCOUNT: service}
    for workspace in sorted(keys):
        if not _WORKSPACE.match(workspace):
            log.warning("workspace %r has no NATS account: not a workspace name", workspace)
            continue
        account = events_account(workspace)
        service["imports"] += [
            {"service": {"account": account, "subject": events_subjects(workspace)}},
            {"service": {"account": account, "subject": "$JS.API.>"}, "to": f"$JS.{account}.API.>"},
        ]
        accounts[account] = {
            "jetstream": "enabled",
            "users": [
                {
                    "user": u.key_id,
                    "password": u.password_hash,
                    "permissions": key_permissions(u.key_id, workspace),
                }
                for u in sorted(keys[workspace], key=lambda u: u.key_id)
            ],
            "exports": [
                {"service": events_subjects(workspace), "accounts": [SERVICE_ACCOUNT]},
                {
                    "service": "$JS.API.>",
                    "accounts": [SERVICE_ACCOUNT],
                    "response_type": "stream",
                    "response_threshold": _RESPONSE_THRESHOLD,
                },
            ],
        }
    return _HEADER + "accounts: " + json.dumps(accounts, indent=2) + "\n"


def parse_users_file(text: str) -> dict[str, Any]:
    """The accounts of a users file `render_users` wrote."""
    return dict(json.loads(text.split("accounts:", 1)[1]))


def _service_hash(users_file: Path, user: str) -> str:
    """The password hash `users_file` keeps for the services' `user` ('' when none)."""
    try:
        entries = parse_users_file(users_file.read_text())[SERVICE_ACCOUNT]["users"]
        return next((str(e["password"]) for e in entries if e.get("user") == user), "")
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return ""


def _matches(password: str, password_hash: str) -> bool:
    try:
        return bool(password_hash) and bcrypt.checkpw(password.encode(), password_hash.encode())
    except ValueError:  # not a bcrypt hash
        return False


def admits(users_file: Path, user: str, password: str) -> bool:
    """Whether `users_file` lets the services' `user` in with `password`."""
    return _matches(password, _service_hash(users_file, user))


def service_password_hash(password: str, users_file: Path | None = None, user: str = "") -> str:
    """A bcrypt hash of the services' password: the one `users_file` keeps for `user` when it
    matches (so rewriting the file changes nothing when nothing else did), else a new one."""
    if users_file is not None:
        kept = _service_hash(users_file, user)
        if _matches(password, kept):
            return kept
    salt = bcrypt.gensalt(rounds=SERVICE_BCRYPT_ROUNDS, prefix=b"2a")
    return bcrypt.hashpw(password.encode(), salt).decode()


def write_users_file(path: Path, text: str) -> bool:
    """Replace `path` atomically with `text` (mode 0600); False when it already held it."""
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(partial, 0o600)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return True


def reload_nats(pid_file: Path | None) -> bool:
    """Ask the nats-server whose pid is in `pid_file` to read its configuration again (SIGHUP);
    False when there is none (a server that starts later reads the file anyway)."""
    if pid_file is None:
        return False
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        log.info("no nats-server pid in %s: the server reads the users when it starts", pid_file)
        return False
    if "nats-server" not in cmdline(pid):  # a stale pid file: never signal another process
        log.warning("pid %d in %s is not a nats-server; not reloading", pid, pid_file)
        return False
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return False
    return True


_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


async def sync_nats_users(pool: asyncpg.Pool, settings: Settings) -> bool:
    """Write the accounts of every workspace and the users of every unrevoked key into
    `settings.nats_users_file` and reload nats-server; True when the file changed. Nothing to
    do when the file is not set (NATS authorization is not managed by Sluice)."""
    if settings.nats_users_file is None:
        return False
    async with _lock():  # one at a time, so an older read never overwrites a newer one
        workspaces = await pool.fetch("SELECT workspace FROM auth.workspaces ORDER BY workspace")
        keys = await pool.fetch(
            "SELECT key_id, workspace, nats_password_hash FROM auth.api_keys "
            "WHERE revoked_at IS NULL ORDER BY key_id"
        )
        service_hash = ""
        if settings.nats_user:
            service_hash = service_password_hash(
                settings.nats_password, settings.nats_users_file, settings.nats_user
            )
        text = render_users(
            [NatsUser(r["key_id"], r["workspace"], r["nats_password_hash"]) for r in keys],
            workspaces=[r["workspace"] for r in workspaces],
            service_user=settings.nats_user,
            service_password_hash=service_hash,
        )
        if not write_users_file(settings.nats_users_file, text):
            return False
        reloaded = reload_nats(settings.nats_pid_file)
        log.info(
            "NATS users written: %d key(s) of %d workspace(s)%s",
            len(keys),
            len(workspaces),
            "; nats-server reloaded" if reloaded else "",
        )
        return True
