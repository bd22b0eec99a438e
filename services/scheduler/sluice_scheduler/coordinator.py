"""The job state machine: accept a job, publish its tasks, follow results, move it to its end.

Results are handled one at a time and every step is idempotent (a result seen twice, a crash
between two steps), so `advance` can always be called again to bring a job to where it should be.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg
from nats.js import JetStreamContext

from sluice.errors import FailedPrecondition, InvalidArgument, NotFound
from sluice.ids import new_id, validate_id
from sluice.messaging import task_subject
from sluice.models.catalog import MappingCatalog, ModelCatalog
from sluice.models.references import referenced_model_ids
from sluice.models.registry import known_models
from sluice.storage import ObjectStore
from sluice.v1 import common_pb2, events_pb2, scheduler_pb2, tasks_pb2
from sluice.workflow import CompiledWorkflow, compile_workflow
from sluice_scheduler import planning
from sluice_scheduler.events import publish_event
from sluice_scheduler.repository import Repository, StageProgress
from sluice_scheduler.staging_client import StagingClient
from sluice_scheduler.workers_seen import WorkersSeen

log = logging.getLogger(__name__)

MACHINE_NAMES = {common_pb2.MACHINE_TYPE_CPU: "cpu", common_pb2.MACHINE_TYPE_GPU: "gpu"}
FORMAT_NAMES = {
    common_pb2.AGGREGATION_FORMAT_JSONL: "jsonl",
    common_pb2.AGGREGATION_FORMAT_CSV: "csv",
}
NO_FAILURE_LIMIT = 1.0


@dataclass(frozen=True)
class SchedulerOptions:
    task_size: int = 50


class Coordinator:
    def __init__(
        self,
        repo: Repository,
        staging: StagingClient,
        js: JetStreamContext,
        store: ObjectStore,
        workers: WorkersSeen,
        options: SchedulerOptions,
    ) -> None:
        self.repo = repo
        self.staging = staging
        self.js = js
        self.store = store
        self.workers = workers
        self.options = options
        self._advancing = asyncio.Lock()

    async def create_job(self, workspace: str, request: scheduler_pb2.CreateJobRequest) -> str:
        """Validate a job, write it with its processing tasks, and publish them."""
        job_id = validate_id(request.job_id, "job id") if request.job_id else new_id("job")
        machine = MACHINE_NAMES.get(request.machine_type or common_pb2.MACHINE_TYPE_CPU)
        if machine is None:
            raise InvalidArgument("machine type must be cpu or gpu")
        fmt = FORMAT_NAMES.get(request.aggregation_format or common_pb2.AGGREGATION_FORMAT_JSONL)
        if fmt is None:
            raise InvalidArgument("aggregation format must be jsonl or csv")
        max_rate = (
            request.max_image_failure_rate if request.HasField("max_image_failure_rate") else NO_FAILURE_LIMIT
        )
        if not 0.0 <= max_rate <= 1.0:
            raise InvalidArgument("max image failure rate must be between 0 and 1")
        if request.workers_per_machine < 0:
            raise InvalidArgument("workers per machine must be positive")
        validate_id(request.workflow_id, "workflow id")
        validate_id(request.batch_id, "batch id")
        workflow = await self.repo.workflow(workspace, request.workflow_id)
        params = parse_parameters(request.workflow_params_json)
        models = await self.catalog(workspace, workflow["definition"], params)
        compiled = compile_workflow(workflow["definition"], models=models)
        params_json = job_parameters(compiled, request, params)
        save_images = request.save_image_outputs or bool(request.image_outputs_to_save)
        batch = await self.staging.batch(workspace, request.batch_id)
        if batch.type != common_pb2.BATCH_TYPE_IMAGES:
            raise FailedPrecondition(f"batch '{request.batch_id}' is not a batch of images")
        names = await self.staging.object_names(workspace, request.batch_id)
        if not names:
            raise FailedPrecondition(f"batch '{request.batch_id}' is empty")
        input_url = await self.staging.location(workspace, request.batch_id)

        job_uid = secrets.token_hex(6)
        processing_batch = f"{job_id}-processing"
        template = tasks_pb2.Task(
            job_id=job_id,
            workspace=workspace,
            input_url=input_url,
            output_url=self.store.batch_url(workspace, processing_batch),
            workflow_json=workflow["definition"],
            workflow_params_json=params_json,
            save_image_outputs=save_images,
            image_outputs_to_save=list(request.image_outputs_to_save),
            aggregation_format=request.aggregation_format or common_pb2.AGGREGATION_FORMAT_JSONL,
            machine_type=request.machine_type or common_pb2.MACHINE_TYPE_CPU,
        )
        tasks = planning.processing_tasks(template, job_uid, names, self.options.task_size)
        await self.repo.create_job(
            {
                "workspace": workspace,
                "job_id": job_id,
                "job_uid": job_uid,
                "workflow_id": request.workflow_id,
                "workflow_version": workflow["version"],
                "batch_id": request.batch_id,
                "machine_type": machine,
                "workers_per_machine": request.workers_per_machine or 1,
                "save_image_outputs": save_images,
                "workflow_params": params_json,
                "image_outputs_to_save": list(request.image_outputs_to_save),
                "aggregation_format": fmt,
                "max_failure_rate": max_rate,
            },
            [
                {
                    "name": planning.PROCESSING,
                    "machine_type": machine,
                    "output_batch_id": processing_batch,
                    "items_total": len(names),
                },
                {
                    "name": planning.EXPORT,
                    "machine_type": "export",
                    "output_batch_id": f"{job_id}-export",
                    "items_total": len(names),
                },
            ],
            tasks,
        )
        await publish_event(
            self.js,
            events_pb2.EVENT_TYPE_JOB_CREATED,
            workspace,
            job_id,
            message=f"{len(names)} images in {len(tasks)} tasks",
            items_total=len(names),
        )
        await self.publish_pending()
        return job_id

    async def catalog(
        self, workspace: str, definition: str, params: dict[str, Any] | None = None
    ) -> ModelCatalog:
        """Built-in models plus the workspace's registered models that `definition` names."""
        ids = referenced_model_ids(json.loads(definition), params) - set(known_models())
        found = {}
        for model_id in sorted(ids):
            try:
                found[model_id] = await self.staging.model_spec(workspace, model_id)
            except NotFound:
                continue  # the compiler refuses it, naming the step and property
        return MappingCatalog(found)

    async def publish_pending(self) -> int:
        """Publish every task written but not yet published; returns how many went out."""
        sent = 0
        while rows := await self.repo.pending_tasks():
            for row in rows:
                await self.js.publish(
                    task_subject(row["machine_type"], row["job_uid"]),
                    bytes(row["payload"]),
                    headers={"Nats-Msg-Id": row["task_id"]},
                )
            await self.repo.mark_published([r["task_id"] for r in rows])
            sent += len(rows)
        return sent

    async def handle_result(self, result: tasks_pb2.TaskResult) -> None:
        recorded = await self.repo.record_result(
            result.task_id,
            ok=result.ok,
            items_done=result.items_done,
            items_failed=result.items_failed,
            worker_id=result.worker_id,
            error=result.error,
        )
        if recorded is None:
            log.warning("result for unknown task %s ignored", result.task_id)
            return
        if recorded.first:
            await self._mark_running(recorded.workspace, recorded.job_id)
            stages = {s.name: s for s in await self.repo.stages(recorded.workspace, recorded.job_id)}
            stage = stages[recorded.stage]
            await publish_event(
                self.js,
                events_pb2.EVENT_TYPE_PROGRESS,
                recorded.workspace,
                recorded.job_id,
                stage=stage.name,
                items_done=stage.items_done,
                items_total=stage.items_total,
            )
        await self.advance(recorded.workspace, recorded.job_id)

    async def _mark_running(self, workspace: str, job_id: str) -> None:
        job = await self.repo.job(workspace, job_id)
        if job["state"] == "queued":
            await self.repo.set_job_state(workspace, job_id, "running")
            await publish_event(
                self.js,
                events_pb2.EVENT_TYPE_STAGE_STARTED,
                workspace,
                job_id,
                stage=job["current_stage"],
            )

    async def start_waiting_jobs(self) -> None:
        """Queued jobs whose machine type now has a live worker become running."""
        for job in await self.repo.active_jobs():
            if job["state"] == "queued" and self.workers.alive(job["machine_type"]):
                await self._mark_running(job["workspace"], job["job_id"])

    async def advance(self, workspace: str, job_id: str) -> None:
        """Complete finished stages, start the next one, finish or fail the job.

        Runs one at a time: the results loop and the start-up recovery both call it, and two
        interleaved runs could otherwise act on stages the other has just moved.
        """
        async with self._advancing:
            await self._advance(workspace, job_id)

    async def _advance(self, workspace: str, job_id: str) -> None:
        job = await self.repo.job(workspace, job_id)
        if job["state"] not in ("queued", "running"):
            return
        for stage in await self.repo.stages(workspace, job_id):
            if stage.state == "completed":
                continue
            if stage.state == "pending":
                await self._start_export(job, stage)
                return
            if stage.tasks_total == 0 or stage.tasks_done < stage.tasks_total:
                return
            if not await self._complete_stage(job, stage):
                return
        await self.repo.set_job_state(workspace, job_id, "completed")
        await publish_event(
            self.js, events_pb2.EVENT_TYPE_JOB_COMPLETED, workspace, job_id, message="completed"
        )

    async def _complete_stage(self, job: asyncpg.Record, stage: StageProgress) -> bool:
        """Register the stage's output batch; False when the job failed instead."""
        workspace, job_id = job["workspace"], job["job_id"]
        batch_type = (
            common_pb2.BATCH_TYPE_PROCESSING_RESULTS
            if stage.name == planning.PROCESSING
            else common_pb2.BATCH_TYPE_EXPORT
        )
        await self.staging.register_output(workspace, stage.output_batch_id, batch_type, job_id)
        rate = stage.items_failed / stage.items_total if stage.items_total else 0.0
        max_rate = float(job["max_failure_rate"])
        if stage.name == planning.PROCESSING and rate > max_rate:
            error = (
                f"{stage.items_failed} of {stage.items_total} images failed ({rate:.1%}), "
                f"above the maximum failure rate of {max_rate:.1%}"
            )
            await self.repo.set_stage_state(workspace, job_id, stage.name, "failed")
            await self.repo.set_job_state(workspace, job_id, "failed", error=error)
            await publish_event(self.js, events_pb2.EVENT_TYPE_JOB_FAILED, workspace, job_id, message=error)
            return False
        await self.repo.set_stage_state(workspace, job_id, stage.name, "completed")
        return True

    async def _start_export(self, job: asyncpg.Record, stage: StageProgress) -> None:
        workspace, job_id = job["workspace"], job["job_id"]
        processing_batch = f"{job_id}-processing"
        task = planning.export_task(
            job_uid=job["job_uid"],
            job_id=job_id,
            workspace=workspace,
            input_url=self.store.batch_url(workspace, processing_batch),
            output_url=self.store.batch_url(workspace, stage.output_batch_id),
            aggregation_format=_format_enum(job["aggregation_format"]),
            item_count=stage.items_total,
        )
        await self.repo.add_tasks(workspace, job_id, [task])
        if not await self.repo.set_stage_state(workspace, job_id, stage.name, "running", was="pending"):
            return  # started already
        await self.repo.set_job_state(workspace, job_id, "running", stage=stage.name)
        await publish_event(self.js, events_pb2.EVENT_TYPE_STAGE_STARTED, workspace, job_id, stage=stage.name)
        await self.publish_pending()

    def notice(self, state: str, stage: StageProgress | None) -> str:
        """Why an active job waits, in plain words; empty when nothing is wrong."""
        if state not in ("queued", "running") or stage is None:
            return ""
        kind = stage.machine_type
        if self.workers.alive(kind) or not self.workers.informed:
            return ""
        who = "no exporter is running" if kind == "export" else f"no {kind} worker is running"
        return f"{who}: the {stage.name} stage waits until one starts"


def parse_parameters(text: str) -> dict[str, Any]:
    """A job's workflow parameters: a JSON object (empty text: none)."""
    try:
        params = json.loads(text or "{}")
    except json.JSONDecodeError as error:
        raise InvalidArgument(f"workflow parameters are not valid JSON: {error}") from None
    if not isinstance(params, dict):
        raise InvalidArgument("workflow parameters must be a JSON object")
    return params


def job_parameters(
    compiled: CompiledWorkflow, request: scheduler_pb2.CreateJobRequest, params: dict[str, Any]
) -> str:
    """Check the job's workflow parameters and image options; returns the parameters as JSON."""
    image_input = compiled.image_input_name
    if request.image_input_name and request.image_input_name != image_input:
        raise InvalidArgument(
            f"the workflow's image input is named '{image_input}', not '{request.image_input_name}'"
        )
    unknown = sorted(set(request.image_outputs_to_save) - set(compiled.image_outputs))
    if unknown:
        known = ", ".join(compiled.image_outputs) or "none"
        raise InvalidArgument(
            f"unknown image outputs {', '.join(unknown)}; the workflow's image outputs: {known}"
        )
    compiled.check_parameters(params)
    return json.dumps(params, sort_keys=True)


def _format_enum(name: str) -> common_pb2.AggregationFormat:
    for value, fmt in FORMAT_NAMES.items():
        if fmt == name:
            return value
    return common_pb2.AGGREGATION_FORMAT_JSONL
