"""Watching a job as a user's script would: GetJob (and the processing batch) polled over gRPC.

Times are wall-clock (`time.time()`), so they compare with the job's `created_at` and `ended_at`
as the scheduler recorded them (same machine, same clock).
"""

from __future__ import annotations

import asyncio
import time

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from sluice.clients import aio_channel, scheduler_stub, staging_stub, user_metadata
from sluice.job_states import ENDED
from sluice.v1 import scheduler_pb2, scheduler_pb2_grpc, staging_pb2, staging_pb2_grpc

PROCESSING = "processing"
RESULTS_PREFIX = "results/"


def _seconds(stamp: Timestamp) -> float:
    return stamp.ToMicroseconds() / 1e6


def since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


class JobWatcher:
    """Polls GetJob every `poll_s` until the job ends, noting when milestones were first seen.

    Given staging's address, it also lists `<job>-processing` (objects under results/) until one
    shows: the first result a user can read.
    """

    def __init__(
        self,
        scheduler: str,
        api_key: str,
        job_id: str,
        *,
        staging: str | None = None,
        poll_s: float = 0.1,
    ) -> None:
        self._scheduler = scheduler
        self._staging = staging
        self._metadata = user_metadata(api_key)
        self.job_id = job_id
        self.poll_s = poll_s
        self.job: scheduler_pb2.Job | None = None
        self.created_at: float | None = None
        self.ended_at: float | None = None
        self.first_item_at: float | None = None
        """First GetJob with the processing stage's items_done >= 1."""
        self.first_object_at: float | None = None
        """First listing of `<job>-processing` with a results/ object."""
        self.processing_done_at: float | None = None
        self.tasks_total = 0
        self.state: int = scheduler_pb2.JOB_STATE_UNSPECIFIED
        self.last_seen = "not seen yet"

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @property
    def first_visible_at(self) -> float | None:
        """When both the job's details and its processing batch showed a first result."""
        if self.first_item_at is None or self.first_object_at is None:
            return None
        return max(self.first_item_at, self.first_object_at)

    def observe(self, job: scheduler_pb2.Job, now: float) -> None:
        self.job = job
        if self.created_at is None and job.HasField("created_at"):
            self.created_at = _seconds(job.created_at)
        if job.HasField("ended_at"):
            self.ended_at = _seconds(job.ended_at)
        self.state = job.state
        progress = ", ".join(
            f"{s.name} tasks {s.tasks_done}/{s.tasks_total} items {s.items_done}/{s.items_total}"
            for s in job.stages
        )
        self.last_seen = (
            f"state {scheduler_pb2.JobState.Name(job.state)}, stage {job.current_stage}: {progress}"
        )
        stage = next((s for s in job.stages if s.name == PROCESSING), None)
        if stage is None:
            return
        self.tasks_total = int(stage.tasks_total)
        if self.first_item_at is None and stage.items_done >= 1:
            self.first_item_at = now
        finished = stage.items_total > 0 and stage.items_done >= stage.items_total
        if self.processing_done_at is None and (
            finished or stage.state == scheduler_pb2.STAGE_STATE_COMPLETED
        ):
            self.processing_done_at = now

    async def _poll_job(self, stub: scheduler_pb2_grpc.SchedulerServiceStub) -> None:
        try:
            job = await stub.GetJob(scheduler_pb2.GetJobRequest(job_id=self.job_id), metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
        else:
            self.observe(job, time.time())

    async def _poll_results(self, stub: staging_pb2_grpc.StagingServiceStub) -> None:
        request = staging_pb2.ListBatchContentRequest(
            batch_id=f"{self.job_id}-processing", page_size=1, all_parts=True, name_prefix=RESULTS_PREFIX
        )
        try:
            listed = await stub.ListBatchContent(request, metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return
        if listed.objects:
            self.first_object_at = time.time()

    async def run(self, until_first_visible: bool = False) -> None:
        """Poll until the job ends (or, with `until_first_visible`, until its first result shows)."""
        async with (
            aio_channel(self._scheduler) as scheduler,
            aio_channel(self._staging or self._scheduler) as staging,
        ):
            jobs, batches = scheduler_stub(scheduler), staging_stub(staging)
            while not self.ended:
                await self._poll_job(jobs)
                if self._staging is not None and self.first_object_at is None:
                    await self._poll_results(batches)
                if until_first_visible and self.first_visible_at is not None:
                    return
                await asyncio.sleep(self.poll_s)
