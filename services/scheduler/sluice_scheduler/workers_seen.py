"""Which machine types have a live worker, from the heartbeats workers send every few seconds."""

from __future__ import annotations

import time

from sluice.v1 import tasks_pb2

ALIVE_FOR_S = 8.0


class WorkersSeen:
    def __init__(self) -> None:
        self._last_seen: dict[str, dict[str, float]] = {}
        self._slots: dict[str, dict[str, int]] = {}
        self._started = time.monotonic()

    @property
    def informed(self) -> bool:
        """Whether heartbeats have had time to arrive since this scheduler started."""
        return time.monotonic() - self._started >= ALIVE_FOR_S

    def record(self, kind: str, payload: bytes) -> bool:
        """Note a heartbeat; True when it brings slots: a worker not alive before, or more slots."""
        beat = tasks_pb2.WorkerHeartbeat.FromString(payload)
        worker, now = beat.worker_id or "?", time.monotonic()
        seen = self._last_seen.setdefault(kind, {})
        slots = self._slots.setdefault(kind, {})
        last = seen.get(worker)
        was_alive = last is not None and now - last < ALIVE_FOR_S
        more = max(beat.slots, 1) > slots.get(worker, 0)
        seen[worker] = now
        slots[worker] = max(beat.slots, 1)
        return more or not was_alive

    def alive(self, kind: str) -> int:
        """How many workers of `kind` (cpu, gpu or export) sent a heartbeat recently."""
        now = time.monotonic()
        seen = self._last_seen.get(kind, {})
        return sum(1 for t in seen.values() if now - t < ALIVE_FOR_S)

    def slots(self, kind: str) -> int:
        """Task slots offered by the live workers of `kind`."""
        now = time.monotonic()
        seen = self._last_seen.get(kind, {})
        slots = self._slots.get(kind, {})
        return sum(slots.get(worker, 1) for worker, t in seen.items() if now - t < ALIVE_FOR_S)
