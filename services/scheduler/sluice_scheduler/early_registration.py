"""Registering a running job's `<job>-processing` batch early, so its first records can be listed.

Staging's RegisterOutputBatch lists the whole folder and rewrites its rows: on a large job one
call takes seconds. So it never runs in the results loop: a request starts a background
registration, at most one per job at a time (requests meanwhile are folded into it), and the
registrations of a job are spaced further apart as its batch grows: the first when its first
task ends (what a user waits for), then after FIRST_INTERVAL_S, twice that, ... up to
MAX_INTERVAL_S.

The stage's final registration (when it completes, or the job is halted) goes through `finally_`:
under the job's lock, so it waits for an early one in flight, and it marks the job so that no
early one starts after it. Each early registration also holds the batch for the job, as its input
batch is held (batch_holds.py): the renewal of the job's holds keeps it until the job ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

FIRST_INTERVAL_S = 10.0
MAX_INTERVAL_S = 120.0

Key = tuple[str, str]
"""(workspace, job id)"""


def interval_after(registrations: int) -> float:
    """Seconds before the next early registration, after `registrations` of them succeeded."""
    if registrations <= 0:
        return 0.0
    return min(FIRST_INTERVAL_S * 2 ** (registrations - 1), MAX_INTERVAL_S)


@dataclass
class _JobRegistrations:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    final: bool = False
    """The final registration ran or runs: no early one starts any more."""
    wanted: bool = False
    """A request came that no registration has served yet."""
    task: asyncio.Task[None] | None = None
    done: int = 0
    """Early registrations that succeeded."""
    next_at: float = 0.0
    """time.monotonic() before which no early registration starts."""


class EarlyRegistrations:
    def __init__(
        self,
        register: Callable[[str, str], Awaitable[None]],
        still_running: Callable[[str, str], Awaitable[bool]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`register(workspace, job_id)` registers and holds the batch; `still_running` says
        whether the job's processing stage still runs (checked before each registration)."""
        self._register = register
        self._still_running = still_running
        self._clock = clock
        self._jobs: dict[Key, _JobRegistrations] = {}

    def request(self, workspace: str, job_id: str) -> None:
        """Ask for an early registration of the job's batch; returns at once."""
        entry = self._jobs.setdefault((workspace, job_id), _JobRegistrations())
        if entry.final:
            return
        entry.wanted = True
        if entry.task is None or entry.task.done():
            entry.task = asyncio.create_task(self._run(workspace, job_id, entry))

    async def finally_(self, workspace: str, job_id: str, register: Callable[[], Awaitable[None]]) -> None:
        """Run the job's final registration after any early one in flight; none starts after."""
        entry = self._jobs.setdefault((workspace, job_id), _JobRegistrations())
        async with entry.lock:
            entry.final = True
            await register()

    def forget(self, workspace: str, job_id: str) -> None:
        """The job ended: drop what is kept for it (a restart starts afresh)."""
        entry = self._jobs.pop((workspace, job_id), None)
        if entry is not None and entry.task is not None:
            entry.task.cancel()

    async def close(self) -> None:
        """Cancel the registrations waiting or in flight (the scheduler stops)."""
        tasks = [e.task for e in self._jobs.values() if e.task is not None]
        self._jobs.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self, workspace: str, job_id: str, entry: _JobRegistrations) -> None:
        while entry.wanted and not entry.final:
            wait = entry.next_at - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            async with entry.lock:
                if entry.final:
                    return
                entry.wanted = False
                try:
                    if not await self._still_running(workspace, job_id):
                        if self._jobs.get((workspace, job_id)) is entry:
                            del self._jobs[(workspace, job_id)]
                        return
                    await self._register(workspace, job_id)
                except Exception as error:  # tried again on a later request, and at the end
                    log.warning("cannot register the first results of job %s: %s", job_id, error)
                    entry.next_at = self._clock() + FIRST_INTERVAL_S
                    continue
                entry.done += 1
                entry.next_at = self._clock() + interval_after(entry.done)
