"""Events any client can follow, on the real local stack: workspaces and keys made with the admin
CLI, real jobs, and outside NATS subscribers that hold nothing but a key's credentials and the
generated protobuf classes.

One stack serves the module; the tests run in order, as a user would.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import cv2
import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from sluice.v1 import events_pb2
from tests.images import photographs
from tests.local_stack import local_stack, sluice

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "workflows" / "text-detection.json"
A, B = "team-a", "team-b"
TERMINAL = {
    events_pb2.EVENT_TYPE_JOB_COMPLETED,
    events_pb2.EVENT_TYPE_JOB_COMPLETED_WITH_ERRORS,
    events_pb2.EVENT_TYPE_JOB_FAILED,
    events_pb2.EVENT_TYPE_JOB_ABORTED,
    events_pb2.EVENT_TYPE_JOB_STOPPED,
}


@dataclass(frozen=True)
class Key:
    workspace: str
    key_id: str
    api_key: str


@pytest.fixture(scope="module")
def state() -> Iterator[Path]:
    yield from local_stack("sluice-events-")


@pytest.fixture(scope="module")
def keys(state: Path) -> dict[str, Key]:
    """Workspaces A and B and a key of each, made with the local stack's admin key."""
    made = {}
    for workspace in (A, B):
        sluice(state, "admin", "create-workspace", "--workspace", workspace)
        out = sluice(state, "admin", "create-api-key", "--workspace", workspace, "--name", "events").stdout
        fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        assert fields["nats_user"] == fields["key_id"], out
        made[workspace] = Key(workspace, fields["key_id"], fields["api_key"])
    settle_reloads(state)
    return made


def settle_reloads(state: Path) -> None:
    """Wait until nats-server has finished every reload it was asked for (a client connecting
    in the middle of one may be left with its workspace's account as it was before)."""
    log = state / "logs" / "nats.log"
    for _ in range(100):
        text = log.read_text()
        if text.count('Trapped "hangup" signal') == text.count("Reloaded server configuration"):
            return
        time.sleep(0.05)
    raise AssertionError(f"nats-server is still reloading; its log:\n{text[-2000:]}")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for i, photo in enumerate(photographs()[:3]):
        cv2.imwrite(str(folder / f"p{i}.jpg"), cv2.resize(photo, (160, 120)))
    return folder


def nats_url(state: Path) -> str:
    port = json.loads((state / "stack.json").read_text())["parts"]["nats"]["port"]
    return f"nats://127.0.0.1:{port}"


def as_key(state: Path, key: Key, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sluice(state, *args, "--api-key", key.api_key, check=check)


def start_job(state: Path, key: Key, job_id: str, images: Path) -> None:
    batch = f"{job_id}-in"
    as_key(
        state, key, "data-staging", "create-batch-of-images", "--images-dir", str(images), "--batch-id", batch
    )
    as_key(state, key, "workflows", "create", "--workflow-id", "boxes", "--file", str(WORKFLOW))
    as_key(
        state,
        key,
        "batch-processing",
        "process-images-with-workflow",
        "--workflow-id",
        "boxes",
        "--batch-id",
        batch,
        "--job-id",
        job_id,
    )


def follow(state: Path, key: Key, job_id: str) -> list[str]:
    """`sluice events --follow`: it ends by itself once the job has ended."""
    command = [sys.executable, "-m", "sluice.cli.main", "events", "--job-id", job_id, "--follow"]
    command += ["--api-key", key.api_key, "--state-dir", str(state)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


class Subscriber:
    """An outside client of workspace `key.workspace`: its key's NATS user, its own inbox prefix."""

    def __init__(self, key: Key) -> None:
        self.key = key
        self.errors: list[str] = []
        self.nc: Client | None = None

    async def connect(self, url: str) -> Client:
        async def on_error(error: Exception) -> None:
            self.errors.append(str(error).lower())

        self.nc = await nats.connect(
            url,
            user=self.key.key_id,
            password=self.key.api_key,
            inbox_prefix=f"_INBOX_{self.key.key_id}",
            error_cb=on_error,
            allow_reconnect=False,
        )
        return self.nc

    async def replay(self, stream: str, subjects: str) -> list[events_pb2.Event]:
        """Every event its stream holds now, in order, through an ordered consumer."""
        assert self.nc is not None
        sub = await self.nc.jetstream().subscribe(subjects, stream=stream, ordered_consumer=True)
        events = []
        while True:
            msg = await sub.next_msg(timeout=10)
            events.append(events_pb2.Event.FromString(msg.data))
            if msg.metadata.num_pending == 0:
                break
        await sub.unsubscribe()
        return events

    async def refused(self, needle: str) -> bool:
        for _ in range(50):
            if any("permissions violation" in e and needle in e for e in self.errors):
                return True
            await asyncio.sleep(0.1)
        return False


def job_events(events: list[events_pb2.Event], job_id: str) -> list[events_pb2.Event]:
    return [e for e in events if e.job_id == job_id]


async def test_a_subscriber_hears_its_workspace_live_and_nothing_else(
    state: Path, keys: dict[str, Key], images: Path
) -> None:
    subscriber = Subscriber(keys[A])
    nc = await subscriber.connect(nats_url(state))
    live: list[tuple[str, events_pb2.Event]] = []

    async def on_event(msg: Msg) -> None:
        live.append((msg.subject, events_pb2.Event.FromString(msg.data)))

    await nc.subscribe(f"sluice.events.{A}.>", cb=on_event)
    others: list[str] = []

    async def on_other(msg: Msg) -> None:
        others.append(msg.subject)

    for subject in (f"sluice.events.{B}.>", "sluice.tasks.>", "sluice.results.>", "_INBOX.>"):
        await nc.subscribe(subject, cb=on_other)
    await nc.flush()
    with pytest.raises((nats.errors.Error, TimeoutError)):  # another workspace's stream
        await asyncio.wait_for(
            nc.jetstream().subscribe(
                f"sluice.events.{B}.>", stream=f"SLUICE_EVENTS_{B}", ordered_consumer=True
            ),
            2,
        )

    await asyncio.to_thread(start_job, state, keys[A], "a-job", images)
    await asyncio.to_thread(start_job, state, keys[B], "b-job", images)
    a_lines, b_lines = await asyncio.gather(
        asyncio.to_thread(follow, state, keys[A], "a-job"), asyncio.to_thread(follow, state, keys[B], "b-job")
    )
    assert "job_completed" in a_lines[-1] and "job_completed" in b_lines[-1], (a_lines, b_lines)
    for _ in range(50):
        if any(e.type in TERMINAL for _, e in live):
            break
        await asyncio.sleep(0.1)

    heard = job_events([e for _, e in live], "a-job")
    kinds = [events_pb2.EventType.Name(e.type) for e in heard]
    assert kinds[0] == "EVENT_TYPE_JOB_CREATED" and kinds[-1] == "EVENT_TYPE_JOB_COMPLETED", kinds
    assert all(subject.startswith(f"sluice.events.{A}.") for subject, _ in live)
    assert {e.workspace for _, e in live} == {A}
    assert not any(e.job_id == "b-job" for _, e in live)
    assert others == []  # nothing of B, no task, no result, no one else's inbox
    for needle in (f'"sluice.events.{B}.>"', '"sluice.tasks.>"', '"sluice.results.>"', '"_inbox.>"'):
        assert await subscriber.refused(needle), (needle, subscriber.errors)
    assert await subscriber.refused(f"consumer.create.sluice_events_{B}"), subscriber.errors
    print(f"[subscriber of {A}] heard {kinds}; refused: {subscriber.errors}")
    await nc.close()


async def test_a_late_subscriber_replays_a_finished_job_in_order(
    state: Path, keys: dict[str, Key], images: Path
) -> None:
    if as_key(
        state, keys[A], "batch-processing", "show-job-details", "--job-id", "a-job", check=False
    ).returncode:
        # run on its own, not after the live test: the job to replay is run here, to its end
        await asyncio.to_thread(start_job, state, keys[A], "a-job", images)
        await asyncio.to_thread(follow, state, keys[A], "a-job")
    subscriber = Subscriber(keys[A])
    await subscriber.connect(nats_url(state))
    replayed = job_events(await subscriber.replay(f"SLUICE_EVENTS_{A}", f"sluice.events.{A}.>"), "a-job")
    assert replayed[0].type == events_pb2.EVENT_TYPE_JOB_CREATED
    assert replayed[-1].type == events_pb2.EVENT_TYPE_JOB_COMPLETED
    assert sum(e.type in TERMINAL for e in replayed) == 1
    assert events_pb2.EVENT_TYPE_STAGE_STARTED in {e.type for e in replayed}
    times = [e.time.ToDatetime() for e in replayed]
    assert times == sorted(times)
    assert len({e.event_id for e in replayed}) == len(replayed)  # each once
    assert {e.workspace for e in replayed} == {A}
    print(f"[late subscriber] replayed {[events_pb2.EventType.Name(e.type)[11:] for e in replayed]}")

    lines = as_key(state, keys[A], "events", "--job-id", "a-job").stdout.splitlines()
    assert len(lines) == len(replayed), lines
    assert "job_created" in lines[0] and "job_completed" in lines[-1]
    assert [line.split()[2] for line in lines] == [
        events_pb2.EventType.Name(e.type)[11:].lower() for e in replayed
    ]
    followed = await asyncio.to_thread(follow, state, keys[A], "a-job")  # ended: it returns at once
    assert followed == lines

    # --since: from the middle of the job on, as a time; as "how long ago"; after its end
    middle = replayed[len(replayed) // 2].time.ToDatetime(tzinfo=UTC)
    later = [e for e in replayed if e.time.ToDatetime(tzinfo=UTC) >= middle]
    assert 0 < len(later) < len(replayed)
    since = as_key(state, keys[A], "events", "--job-id", "a-job", "--since", middle.isoformat())
    assert since.stdout.splitlines() == lines[-len(later) :]
    assert as_key(state, keys[A], "events", "--job-id", "a-job", "--since", "1d").stdout.splitlines() == lines
    after = as_key(state, keys[A], "events", "--job-id", "a-job", "--since", "2100-01-01", "--follow")
    assert after.stdout.strip() == "no events"
    if subscriber.nc is not None:
        await subscriber.nc.close()


def test_another_workspace_job_is_not_found(state: Path, keys: dict[str, Key]) -> None:
    refused = as_key(state, keys[A], "events", "--job-id", "b-job", check=False)
    assert refused.returncode != 0
    assert "job 'b-job' not found" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr


async def test_a_revoked_key_is_cut_off_from_nats(state: Path, keys: dict[str, Key]) -> None:
    subscriber = Subscriber(keys[B])
    nc = await subscriber.connect(nats_url(state))
    sluice(state, "admin", "revoke-api-key", "--key-id", keys[B].key_id)
    for _ in range(50):
        if not nc.is_connected:
            break
        await asyncio.sleep(0.1)
    assert not nc.is_connected, "the revoked key's connection stayed open for 5 s"
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
        await nats.connect(
            nats_url(state),
            user=keys[B].key_id,
            password=keys[B].api_key,
            allow_reconnect=False,
            connect_timeout=2,
        )
    stranger = secrets.token_hex(4)
    with pytest.raises(nats.errors.Error, match=r"(?i)authorization"):
        await nats.connect(nats_url(state), user=stranger, password=stranger, allow_reconnect=False)
