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

    def record(self, kind: str, payload: bytes) -> None:
        beat = tasks_pb2.WorkerHeartbeat.FromString(payload)
        self._last_seen.setdefault(kind, {})[beat.worker_id or "?"] = time.monotonic()
        self._slots.setdefault(kind, {})[beat.worker_id or "?"] = max(beat.slots, 1)

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
