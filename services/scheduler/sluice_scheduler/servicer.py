"""The SchedulerService gRPC handlers: thin, scoped to the caller's workspace."""

from __future__ import annotations

import grpc

from sluice.grpc_server import current_workspace
from sluice.ids import validate_id
from sluice.v1 import scheduler_pb2, scheduler_pb2_grpc
from sluice.workflow import canonical_json, compile_workflow
from sluice_scheduler import convert
from sluice_scheduler.coordinator import Coordinator
from sluice_scheduler.repository import Repository


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
        limit = min(request.page_size or 100, 1000)
        rows = await self.repo.jobs(current_workspace(), limit)
        jobs = [await self._job(row["job_id"]) for row in rows]
        return scheduler_pb2.ListJobsResponse(jobs=jobs)

    async def GetJob(
        self, request: scheduler_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.Job:
        validate_id(request.job_id, "job id")
        return await self._job(request.job_id)

    async def _job(self, job_id: str) -> scheduler_pb2.Job:
        workspace = current_workspace()
        row = await self.repo.job(workspace, job_id)
        stages = await self.repo.stages(workspace, job_id)
        current = next((s for s in stages if s.name == row["current_stage"]), None)
        return convert.job(row, stages, self.coordinator.notice(row["state"], current))
