"""How a job's images are cut into tasks: small first tasks (records early), and for a large
job a shrinking tail (the slots end together instead of one running the last task alone)."""

from __future__ import annotations

import pytest

from sluice_scheduler.planning import task_sizes


@pytest.mark.parametrize(
    ("total", "expected"),
    [
        (1, [1]),
        (7, [1, 2, 4]),
        (48, [1, 2, 4, 8, 16, 17]),
        (199, [1, 2, 4, 8, 16, 32, 50, 50, 36]),
    ],
)
def test_a_small_job_doubles_up_to_the_task_size_and_keeps_it(total: int, expected: list[int]) -> None:
    assert task_sizes(total, 50) == expected


def test_a_large_job_ends_on_halving_tasks() -> None:
    sizes = task_sizes(10_000, 50)
    assert sum(sizes) == 10_000
    assert sizes[:7] == [1, 2, 4, 8, 16, 32, 50]
    tail = sizes[-6:]
    assert tail == [25, 12, 6, 3, 3, 1]  # the last 50 images: halving, no task under 50 // 16
    assert sum(tail) == 50 and sizes[-7] <= 50
    assert len(sizes) <= 10_000 // 50 + 6 + 6  # a dozen tasks more than full ones in all


def test_the_tail_starts_at_four_full_tasks() -> None:
    assert task_sizes(199, 50)[-1] == 36  # under 4 tasks' worth: no tail
    assert task_sizes(200, 50)[-6:] == [25, 12, 6, 3, 3, 1]
    assert task_sizes(100, 1) == [1] * 100
