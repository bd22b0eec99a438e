"""The SchedulerService gRPC handlers: thin, scoped to the caller's workspace."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc

from sluice.errors import InvalidArgument
from sluice.grpc_server import current_workspace
from sluice.ids import validate_id
from sluice.v1 import events_pb2, scheduler_pb2, scheduler_pb2_grpc
from sluice.workflow import canonical_json, compile_workflow
from sluice_scheduler import convert, paging
from sluice_scheduler.coordinator import Coordinator
from sluice_scheduler.estimate import estimate_job
from sluice_scheduler.event_reader import job_events
from sluice_scheduler.repository import ENDED, Repository
from sluice_scheduler.usage import job_usage, usage_report


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self, repo: Repository, coordinator: Coordinator) -> None:
        self.repo = repo
        self.coordinator = coordinator

    async def CreateWorkflow(
        self, request: scheduler_pb2.CreateWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Workflow:
        validate_id(request.workflow_id, "workflow id")
        definition = canonical_json(request.definition_json)
        workspace = current_workspace()
        compile_workflow(definition, models=await self.coordinator.catalog(workspace, definition))
        row = await self.repo.save_workflow(workspace, request.workflow_id, definition)
        return convert.workflow(row)

    async def ListWorkflows(
        self, request: scheduler_pb2.ListWorkflowsRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ListWorkflowsResponse:
        rows = await self.repo.latest_workflows(current_workspace())
        return scheduler_pb2.ListWorkflowsResponse(workflows=[convert.workflow(r) for r in rows])

    async def GetWorkflow(
        self, request: scheduler_pb2.GetWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Workflow:
        validate_id(request.workflow_id, "workflow id")
        row = await self.repo.workflow(current_workspace(), request.workflow_id, request.version)
        return convert.workflow(row)

    async def CreateJob(
        self, request: scheduler_pb2.CreateJobRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Job:
        job_id = await self.coordinator.create_job(current_workspace(), request)
        return await self._job(job_id)

    async def ListJobs(
        self, request: scheduler_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ListJobsResponse:
        if request.page_size < 0:
            raise InvalidArgument("page size must be positive")
        limit = min(request.page_size or 100, 1000)
        states = [convert.job_state_name(state) for state in request.states]
        before = paging.decode_job_token(request.page_token) if request.page_token else None
        rows = await self.repo.jobs(current_workspace(), limit + 1, states, before)
        jobs = [await self._job(row["job_id"], with_tasks=False) for row in rows[:limit]]
        token = paging.job_token(rows[limit - 1]) if len(rows) > limit else ""
        return scheduler_pb2.ListJobsResponse(jobs=jobs, next_page_token=token)

    async def GetJob(
        self, request: scheduler_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Job:
        validate_id(request.job_id, "job id")
        return await self._job(request.job_id)

    async def AbortJob(
        self, request: scheduler_pb2.AbortJobRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Job:
        job_id = validate_id(request.job_id, "job id")
        await self.coordinator.abort(current_workspace(), job_id)
        return await self._job(job_id)

    async def RestartJob(
        self, request: scheduler_pb2.RestartJobRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Job:
        await self.coordinator.restart(current_workspace(), request)
        return await self._job(request.job_id)

    async def FetchLogs(
        self, request: scheduler_pb2.FetchLogsRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.FetchLogsResponse:
        job_id = validate_id(request.job_id, "job id")
        workspace = current_workspace()
        await self.repo.job(workspace, job_id)  # NotFound for another workspace's job
        if request.page_size < 0:
            raise InvalidArgument("page size must be positive")
        limit = min(request.page_size or 1000, 1000)
        after = paging.decode_log_token(request.page_token) if request.page_token else 0
        rows = await self.coordinator.logs.page(
            workspace, job_id, int(request.min_severity), limit + 1, after
        )
        token = str(rows[limit - 1]["id"]) if len(rows) > limit else ""
        return scheduler_pb2.FetchLogsResponse(
            records=[convert.log_record(r) for r in rows[:limit]], next_page_token=token
        )

    async def GetUsage(
        self, request: scheduler_pb2.GetUsageRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.GetUsageResponse:
        return await usage_report(self.repo.pool, current_workspace(), request, self.coordinator.rates)

    async def EstimateJob(
        self, request: scheduler_pb2.CreateJobRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.JobEstimate:
        return await estimate_job(self.coordinator, current_workspace(), request)

    async def ListEvents(
        self, request: scheduler_pb2.ListEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[events_pb2.Event]:
        workspace, job_id = current_workspace(), validate_id(request.job_id, "job id")
        job = await self.repo.job(workspace, job_id)  # NotFound for another workspace's job

        async def finished() -> bool:
            return (await self.repo.job(workspace, job_id))["state"] in ENDED

        events = job_events(
            self.coordinator.js,
            workspace,
            job_id,
            job["created_at"],
            follow=request.follow,
            job_finished=finished,
            since=_since(request),
        )
        async for event in events:
            yield event

    async def _job(self, job_id: str, with_tasks: bool = True) -> scheduler_pb2.Job:
        workspace = current_workspace()
        row = await self.repo.job(workspace, job_id)
        stages = await self.repo.stages(workspace, job_id)
        current = next((s for s in stages if s.name == row["current_stage"]), None)
        used = await job_usage(self.repo.pool, workspace, job_id, self.coordinator.rates)
        machine_seconds = used.cpu_seconds + used.gpu_seconds
        tasks = await self.coordinator.tasks.notable(workspace, job_id) if with_tasks else []
        notice = self.coordinator.notice(row["state"], current)
        return convert.job(row, stages, notice, machine_seconds, tasks, usage=used)


def _since(request: scheduler_pb2.ListEventsRequest) -> datetime | None:
    """ListEventsRequest.since as a time; None when unset."""
    if not request.HasField("since"):
        return None
    try:
        return request.since.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument("since is not a valid time") from None
