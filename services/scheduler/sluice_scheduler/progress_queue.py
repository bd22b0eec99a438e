"""Progress reports, coalesced: the newest report of each delivery waits, older ones are dropped.

Workers report a running task's progress on core NATS (at most a few a second per slot), and
recording one is a database round trip. Handled one by one from the subscription, a burst
(hundreds of slots, or the database slow for a moment) queued up in the client without bound,
each stale before it was written. Here a report replaces the waiting one of the same delivery
(task, worker, delivery number: what a report describes), so at most one per running delivery
waits, and each write carries the newest figures. Nothing a report says is lost by it: items and
machine time only grow, and the start of a delivery is told by the delivery itself, not by which
of its reports arrives first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sluice.v1 import tasks_pb2

Key = tuple[str, str, int]


class ProgressQueue:
    def __init__(self, handle: Callable[[tasks_pb2.TaskProgress], Awaitable[None]]) -> None:
        self._handle = handle
        self._waiting: dict[Key, tasks_pb2.TaskProgress] = {}
        self._arrived = asyncio.Event()

    def put(self, progress: tasks_pb2.TaskProgress) -> None:
        key = (progress.task_id, progress.worker_id, progress.delivery)
        self._waiting.pop(key, None)  # re-inserted last: reports are handled in arrival order
        self._waiting[key] = progress
        self._arrived.set()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def run(self, stop: asyncio.Event) -> None:
        """Handle what waits, newest report per delivery, until `stop`; `handle` must not raise."""
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                arrived = asyncio.create_task(self._arrived.wait())
                await asyncio.wait({arrived, stopping}, return_when=asyncio.FIRST_COMPLETED)
                arrived.cancel()
                self._arrived.clear()
                while self._waiting and not stop.is_set():
                    key = next(iter(self._waiting))
                    await self._handle(self._waiting.pop(key))
        finally:
            stopping.cancel()
