"""Progress reports coalesced per delivery while the scheduler is busy writing one."""

from __future__ import annotations

import asyncio

from sluice.v1 import tasks_pb2
from sluice_scheduler.progress_queue import ProgressQueue


def report(task_id: str, delivery: int, done: int, worker: str = "w1") -> tasks_pb2.TaskProgress:
    return tasks_pb2.TaskProgress(task_id=task_id, worker_id=worker, delivery=delivery, items_done=done)


async def test_a_burst_keeps_the_newest_report_of_each_delivery_in_arrival_order() -> None:
    handled: list[tuple[str, str, int, int]] = []
    gate = asyncio.Event()

    async def handle(progress: tasks_pb2.TaskProgress) -> None:
        await gate.wait()  # the database is slow: reports pile up meanwhile
        handled.append((progress.task_id, progress.worker_id, progress.delivery, progress.items_done))

    queue, stop = ProgressQueue(handle), asyncio.Event()
    running = asyncio.create_task(queue.run(stop))
    queue.put(report("t1", 1, 1))
    for _ in range(10):
        await asyncio.sleep(0)
    assert queue.waiting == 0  # taken at once, and now being written
    for done in (2, 3, 4):
        queue.put(report("t1", 1, done))
    queue.put(report("t2", 1, 7))
    queue.put(report("t1", 2, 1))  # a redelivery is a delivery of its own
    queue.put(report("t1", 2, 1, worker="w2"))  # and so is another worker's
    assert queue.waiting == 4
    gate.set()
    for _ in range(100):
        if len(handled) == 5:
            break
        await asyncio.sleep(0.01)
    assert handled == [
        ("t1", "w1", 1, 1),
        ("t1", "w1", 1, 4),
        ("t2", "w1", 1, 7),
        ("t1", "w1", 2, 1),
        ("t1", "w2", 2, 1),
    ]
    queue.put(report("t3", 1, 1))  # later reports are handled as they come
    for _ in range(100):
        if len(handled) == 6:
            break
        await asyncio.sleep(0.01)
    assert handled[-1] == ("t3", "w1", 1, 1)
    stop.set()
    await asyncio.wait_for(running, 5)
