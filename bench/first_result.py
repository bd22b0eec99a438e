"""Submission -> first visible result, on a warm stack.

Warm: the worker has already run a job with the same workflow (its model is loaded and the
workflow compiled). Each try submits a job over gRPC (CreateJob, as a script would) on a staged
batch and polls, every 50 ms, GetJob and staging's listing of `<job>-processing` (objects under
results/). The clock runs from just before CreateJob to the first poll that shows the processing
stage's items_done >= 1 and to the first listing that shows a results/ object; "visible" is the
later of the two. The job is then aborted and the bench waits for it to end, so the next try
starts on an idle worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass

from bench.stack import LocalStack
from bench.watch import JobWatcher, since
from sluice.clients import aio_channel, scheduler_stub, user_metadata
from sluice.v1 import common_pb2, scheduler_pb2

POLL_S = 0.05
SETTLE_S = 1.0
"""Pause after an aborted try (the worker finishes the batch it was on)."""


@dataclass(frozen=True)
class FirstResultTry:
    item_s: float | None
    """CreateJob to the first GetJob with items_done >= 1."""
    object_s: float | None
    """CreateJob to the first results/ object listed in `<job>-processing`."""

    @property
    def visible_s(self) -> float | None:
        if self.item_s is None or self.object_s is None:
            return None
        return max(self.item_s, self.object_s)


@dataclass(frozen=True)
class FirstResult:
    tries: tuple[FirstResultTry, ...]

    def median(self, pick: str) -> float | None:
        """The median over the tries of `item_s`, `object_s` or `visible_s`; None if one never showed."""
        values = [getattr(t, pick) for t in self.tries]
        if not values or any(v is None for v in values):
            return None
        return statistics.median(values)

    def spread(self) -> str:
        seen = [t.visible_s for t in self.tries if t.visible_s is not None]
        return f"{min(seen):.2f}-{max(seen):.2f} s" if seen else "-"


async def _one_try(
    stack: LocalStack, workflow_id: str, batch_id: str, job_id: str, timeout_s: float
) -> FirstResultTry:
    metadata = user_metadata(stack.api_key)
    watcher = JobWatcher(
        stack.scheduler_address, stack.api_key, job_id, staging=stack.staging_address, poll_s=POLL_S
    )
    async with aio_channel(stack.scheduler_address) as channel:
        jobs = scheduler_stub(channel)
        start = time.time()
        await jobs.CreateJob(
            scheduler_pb2.CreateJobRequest(
                job_id=job_id,
                workflow_id=workflow_id,
                batch_id=batch_id,
                machine_type=common_pb2.MACHINE_TYPE_CPU,
                aggregation_format=common_pb2.AGGREGATION_FORMAT_JSONL,
            ),
            metadata=metadata,
        )
        with contextlib.suppress(TimeoutError):  # not seen in time: reported as "-"
            await asyncio.wait_for(watcher.run(until_first_visible=True), timeout_s)
        if not watcher.ended:
            await jobs.AbortJob(scheduler_pb2.AbortJobRequest(job_id=job_id), metadata=metadata)
    await asyncio.wait_for(watcher.run(), timeout_s)
    await asyncio.sleep(SETTLE_S)
    return FirstResultTry(since(start, watcher.first_item_at), since(start, watcher.first_object_at))


async def first_result(
    stack: LocalStack, workflow_id: str, batch_id: str, job_prefix: str, tries: int, timeout_s: float
) -> FirstResult:
    """`tries` jobs of `workflow_id` over `batch_id`, one after another (ids `<job_prefix>-<n>`)."""
    done = []
    for index in range(tries):
        done.append(await _one_try(stack, workflow_id, batch_id, f"{job_prefix}-{index + 1}", timeout_s))
    return FirstResult(tuple(done))
