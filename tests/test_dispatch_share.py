"""How free slots are shared between jobs (pure functions, table-driven)."""

from __future__ import annotations

import pytest

from sluice_scheduler.dispatcher import QUEUE_AHEAD_UNDER_S, queue_room, share
from sluice_scheduler.task_records import Candidate
from sluice_worker.processing import TaskOutcome
from sluice_worker.reporting import StoppedJobs, summarise_errors


def job(
    name: str,
    pending: int,
    priority: int = 0,
    parallel: int = 0,
    per_worker: int = 0,
    task_s: float | None = None,
) -> Candidate:
    return Candidate("ws", name, f"uid-{name}", "running", priority, parallel, per_worker, pending, task_s)


@pytest.mark.parametrize(
    ("free", "jobs", "in_flight", "workers", "expected"),
    [
        # Round-robin: one at a time to each job, in the order given (served longest ago first).
        (3, [job("big", 100), job("small", 1)], {}, 1, {"big": 2, "small": 1}),
        (4, [job("a", 100), job("b", 100)], {}, 1, {"a": 2, "b": 2}),
        # A job never gets more than it has pending.
        (5, [job("a", 2)], {}, 1, {"a": 2}),
        # --max-parallel-tasks counts what is already in flight.
        (4, [job("a", 10, parallel=3), job("b", 10)], {"a": 2}, 1, {"a": 1, "b": 3}),
        # --workers-per-machine: k slots per live worker.
        (8, [job("a", 10, per_worker=1), job("b", 10)], {}, 2, {"a": 2, "b": 6}),
        # Higher priority first; equals share what is left.
        (3, [job("low", 10), job("high", 2, priority=5)], {}, 1, {"high": 2, "low": 1}),
        (0, [job("a", 10)], {}, 1, {}),
    ],
)
def test_free_slots_are_shared(
    free: int, jobs: list[Candidate], in_flight: dict[str, int], workers: int, expected: dict[str, int]
) -> None:
    granted = share(free, jobs, {("ws", k): v for k, v in in_flight.items()}, workers)
    assert {job_id: n for (_, job_id), n in granted.items()} == expected


SHORT = QUEUE_AHEAD_UNDER_S / 10
LONG = QUEUE_AHEAD_UNDER_S * 10


@pytest.mark.parametrize(
    ("slots", "in_flight", "task_seconds", "room"),
    [
        # Every job waiting or in flight runs short tasks: one more per slot may wait in the queue.
        (4, 0, [SHORT], 8),
        (4, 6, [SHORT, SHORT], 2),
        # A job not measured yet, or one with long tasks, keeps the queue to the slots, whether
        # it waits for a slot or holds one (nothing queues behind a long task)...
        (4, 0, [SHORT, None], 4),
        (4, 1, [LONG], 3),
        (4, 2, [SHORT, LONG], 2),
        # ... and while short tasks queued ahead drain, nothing more goes out.
        (4, 7, [SHORT, LONG], -3),
        (4, 2, [], 2),
    ],
)
def test_short_tasks_queue_one_ahead_per_slot_while_no_other_job_is_about(
    slots: int, in_flight: int, task_seconds: list[float | None], room: int
) -> None:
    assert queue_room(slots, in_flight, task_seconds) == room


def test_a_stop_covers_its_attempt_and_earlier_ones() -> None:
    stops = StoppedJobs()
    assert not stops.stopped("uid", 1)
    assert stops.add("uid", 2)
    assert not stops.add("uid", 1)  # old news
    assert stops.stopped("uid", 1) and stops.stopped("uid", 2)
    assert not stops.stopped("uid", 3) and not stops.stopped("other", 1)


def test_failed_images_are_summarised_by_reason() -> None:
    outcome = TaskOutcome(10, 3, errors=("empty file", "corrupt", "empty file"))
    assert summarise_errors(outcome) == "3 of 10 images failed: 2 x empty file; 1 x corrupt"
