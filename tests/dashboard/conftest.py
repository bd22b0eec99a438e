"""One local stack, with the dashboard process, for every dashboard test: it starts when the first
of them needs it and stops after the last (package scope). Each module takes its own workspace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dashboard_stack import DashboardStack, dashboard_stack


@pytest.fixture(scope="package")
def shared_stack() -> Iterator[DashboardStack]:
    with pytest.MonkeyPatch.context() as patch:
        # Tasks of 2 images: a job of a few photos runs as several tasks, so it can be caught running.
        patch.setenv("SLUICE_TASK_SIZE", "2")
        yield from dashboard_stack("sluice-dash-", dashboard=True)


@pytest.fixture(scope="module")
def stack(shared_stack: DashboardStack, request: pytest.FixtureRequest) -> DashboardStack:
    """The shared stack as a workspace named after the test module (dash-jobs, dash-data...)."""
    return shared_stack.workspace("dash-" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))
