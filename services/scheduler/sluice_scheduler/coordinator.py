"""The job state machine: accept a job, dispatch its tasks, follow them, move it to its end.

Results are recorded in groups and every step is idempotent (a result seen twice, a crash
between two steps), so `advance` can always be called again to bring a job to where it should be;
the tick's stall sweep does so for a job whose stage ended while something after the results'
commit failed. Abort and the runtime cap end a job through `halt`; `restart` makes it active again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from nats.aio.client import Client
from nats.js import JetStreamContext

from sluice import messaging, webhooks
from sluice.errors import FailedPrecondition, InvalidArgument, NotFound
from sluice.ids import new_id, validate_id
from sluice.models.catalog import MappingCatalog, ModelCatalog
from sluice.models.references import referenced_model_ids
from sluice.models.registry import known_models
from sluice.storage import ObjectStore
from sluice.v1 import common_pb2, events_pb2, scheduler_pb2, staging_pb2, tasks_pb2
from sluice.webhooks import DeliveryPolicy
from sluice.workflow import compile_workflow
from sluice_scheduler import batch_holds, planning
from sluice_scheduler.dispatcher import KINDS, Dispatcher
from sluice_scheduler.early_registration import EarlyRegistrations
from sluice_scheduler.job_logs import ERROR, INFO, WARNING, JobLogs
from sluice_scheduler.job_options import (
    FORMAT_NAMES,
    JobLimits,
    format_enum,
    job_limits,
    job_parameters,
    parse_parameters,
)
from sluice_scheduler.notifications import JobEvents, JobWebhooks
from sluice_scheduler.repository import (
    ENDED,
    ESTIMATE,
    RESTARTABLE,
    JobChanges,
    Repository,
    StageProgress,
    not_restartable,
)
from sluice_scheduler.result_group import RecordedResult
from sluice_scheduler.staging_client import StagingClient
from sluice_scheduler.task_records import RecordedProgress, StageCounts, TaskRecords
from sluice_scheduler.usage import CreditRates
from sluice_scheduler.video_planning import is_video_batch, video_options, video_tasks
from sluice_scheduler.workers_seen import WorkersSeen

log = logging.getLogger(__name__)

MACHINE_NAMES = {common_pb2.MACHINE_TYPE_CPU: "cpu", common_pb2.MACHINE_TYPE_GPU: "gpu"}
NO_FAILURE_LIMIT = 1.0
MAX_PRIORITY = 1000
# Workers are told again to stop a halted job's tasks for this long (a worker may have missed it).
RESEND_STOP_FOR_S = 30.0


@dataclass(frozen=True)
class SchedulerOptions:
    task_size: int = 50
    backlog_address: str | None = None
    """host:port of the GET /backlog endpoint for autoscalers; None serves none."""
    webhooks: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    """Timeout, backoff and giving up of webhook deliveries (SLUICE_WEBHOOK_*)."""
    hold_renew_s: float = batch_holds.RENEW_EVERY_S
    """How often the holds on active jobs' batches are renewed (batch_holds.py)."""


@dataclass(frozen=True)
class CheckedJob:
    """A CreateJobRequest that passed every check, with what the checks looked up."""

    job_id: str
    machine: str
    fmt: str
    max_rate: float
    limits: JobLimits
    workflow: asyncpg.Record
    params_json: str
    save_images: bool
    batch: staging_pb2.Batch
    videos: bool
    max_fps: float
    segment_s: float
    objects: list[staging_pb2.BatchObject]
    names: list[str]
    input_url: str


def _items(job: asyncpg.Record) -> str:
    """What a job's items are called: images, or the frames of its videos."""
    return "frames" if job["input_type"] == "videos" else "images"


class Coordinator:
    def __init__(
        self,
        repo: Repository,
        staging: StagingClient,
        nc: Client,
        store: ObjectStore,
        workers: WorkersSeen,
        options: SchedulerOptions,
        rates: CreditRates | None = None,
    ) -> None:
        self.repo = repo
        self.staging = staging
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.store = store
        self.workers = workers
        self.options = options
        self.rates = rates or CreditRates()
        self.tasks = TaskRecords(repo.pool)
        self.logs = JobLogs(repo.pool)
        self.dispatcher = Dispatcher(self.tasks, self.js, workers)
        self._advancing = asyncio.Lock()
        # Held while a group of results is recorded and while a job is halted or restarted, so
        # this process's transactions over a job's tasks never deadlock with each other.
        self._recording = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self.early = EarlyRegistrations(self._register_early, self._processing_runs)
        self.webhooks = JobWebhooks(repo, self.logs, options.webhooks)
        self.events = JobEvents(repo, self.js, self.webhooks)

    async def create_job(self, workspace: str, request: scheduler_pb2.CreateJobRequest) -> str:
        """Validate a job, write it with its processing tasks, and publish them."""
        url = webhooks.validate_url(request.notifications_url) if request.notifications_url else ""
        checked = await self.check_job(workspace, request)
        job_id, machine, fmt, max_rate, limits = (
            checked.job_id,
            checked.machine,
            checked.fmt,
            checked.max_rate,
            checked.limits,
        )
        workflow, params_json, save_images = checked.workflow, checked.params_json, checked.save_images
        videos, max_fps, segment_s = checked.videos, checked.max_fps, checked.segment_s
        objects, names, input_url = checked.objects, checked.names, checked.input_url

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
            attempt=1,
        )
        if videos:
            plan = await video_tasks(template, job_uid, input_url, objects, max_fps, segment_s)
            tasks, items = plan.tasks, plan.frames
            created = f"{plan.videos} videos, {plan.frames} frames to process, in {len(tasks)} tasks"
        else:
            tasks = planning.processing_tasks(template, job_uid, names, self.options.task_size)
            items = len(names)
            created = f"{len(names)} images in {len(tasks)} tasks"
        await self.repo.create_job(
            {
                "workspace": workspace,
                "job_id": job_id,
                "job_uid": job_uid,
                "workflow_id": request.workflow_id,
                "workflow_version": workflow["version"],
                "batch_id": request.batch_id,
                "machine_type": machine,
                "workers_per_machine": limits.workers_per_machine,
                "max_parallel_tasks": limits.max_parallel_tasks,
                "max_runtime_s": limits.max_runtime_s,
                "priority": request.priority,
                "save_image_outputs": save_images,
                "workflow_params": params_json,
                "image_outputs_to_save": list(request.image_outputs_to_save),
                "aggregation_format": fmt,
                "max_failure_rate": max_rate,
                "input_type": "videos" if videos else "images",
                "max_video_fps": max_fps,
                "video_segment_s": segment_s if videos else 0.0,
                "notifications_url": url,
            },
            [
                {
                    "name": planning.PROCESSING,
                    "machine_type": machine,
                    "output_batch_id": processing_batch,
                    "items_total": items,
                },
                {
                    "name": planning.EXPORT,
                    "machine_type": "export",
                    "output_batch_id": f"{job_id}-export",
                    "items_total": items,
                },
            ],
            tasks,
        )
        await self.events.emit(workspace, job_id, events_pb2.EVENT_TYPE_JOB_CREATED, message=created)
        await self.logs.add(workspace, job_id, INFO, f"job created: {created}")
        await self.dispatch()
        return job_id

    async def check_job(self, workspace: str, request: scheduler_pb2.CreateJobRequest) -> CheckedJob:
        """Every check CreateJob makes before it writes anything (EstimateJob makes them too)."""
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
        limits = job_limits(
            request.workers_per_machine,
            request.max_parallel_tasks,
            request.max_runtime_seconds if request.HasField("max_runtime_seconds") else None,
        )
        if abs(request.priority) > MAX_PRIORITY:
            raise InvalidArgument(f"priority must be between -{MAX_PRIORITY} and {MAX_PRIORITY}")
        validate_id(request.workflow_id, "workflow id")
        validate_id(request.batch_id, "batch id")
        workflow = await self.repo.workflow(workspace, request.workflow_id)
        params = parse_parameters(request.workflow_params_json)
        models = await self.catalog(workspace, workflow["definition"], params)
        compiled = compile_workflow(workflow["definition"], models=models)
        params_json = job_parameters(compiled, request, params)
        save_images = request.save_image_outputs or bool(request.image_outputs_to_save)
        # Holding it first refuses an expired batch, saying when it expired (batch_holds.py).
        batch = await batch_holds.hold_input(self.staging, workspace, request.batch_id, job_id)
        videos = is_video_batch(batch)
        if batch.type not in (common_pb2.BATCH_TYPE_IMAGES, common_pb2.BATCH_TYPE_VIDEOS):
            raise FailedPrecondition(f"batch '{request.batch_id}' is not a batch of images or videos")
        if not videos and (request.HasField("max_video_fps") or request.video_segment_seconds):
            raise InvalidArgument(
                f"batch '{request.batch_id}' holds images: --max-video-fps and "
                "--video-segment-seconds apply to videos batches"
            )
        max_fps, segment_s = video_options(
            request.max_video_fps if request.HasField("max_video_fps") else None,
            request.video_segment_seconds,
        )
        objects = await self.staging.objects(workspace, request.batch_id)
        if not objects:
            raise FailedPrecondition(f"batch '{request.batch_id}' is empty")
        names = [o.name for o in objects]
        input_url = await self.staging.location(workspace, request.batch_id)
        return CheckedJob(
            job_id=job_id,
            machine=machine,
            fmt=fmt,
            max_rate=max_rate,
            limits=limits,
            workflow=workflow,
            params_json=params_json,
            save_images=save_images,
            batch=batch,
            videos=videos,
            max_fps=max_fps,
            segment_s=segment_s,
            objects=objects,
            names=names,
            input_url=input_url,
        )

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

    async def dispatch(self) -> int:
        """Publish pending tasks into free slots; returns how many went out."""
        sent = await self.dispatcher.dispatch(on_first=self._mark_running)
        return sum(item.count for item in sent)

    async def _mark_running(self, workspace: str, job_id: str) -> None:
        """A queued job got its first task into the queue: it and its current stage run."""
        job = await self.repo.job(workspace, job_id)
        if job["state"] != "queued":
            return
        await self.repo.set_job_state(workspace, job_id, "running")
        await self.repo.set_stage_state(workspace, job_id, job["current_stage"], "running", was="pending")
        await self.events.emit(
            workspace, job_id, events_pb2.EVENT_TYPE_STAGE_STARTED, stage=job["current_stage"]
        )
        await self.logs.add(workspace, job_id, INFO, f"{job['current_stage']} stage started")
        # Results recorded before the stage ran (a fast first task) did not advance it. Not
        # awaited here: dispatch can run inside advance (the export starting), which holds the lock.
        stage = next(s for s in await self.repo.stages(workspace, job_id) if s.name == job["current_stage"])
        if stage.tasks_total and stage.tasks_done >= stage.tasks_total:
            advancing = asyncio.create_task(self._advance_logged(workspace, job_id))
            self._background.add(advancing)
            advancing.add_done_callback(self._background.discard)

    async def _advance_logged(self, workspace: str, job_id: str) -> None:
        """`advance` in the background: a failure is logged (the stall sweep retries it)."""
        try:
            await self.advance(workspace, job_id)
        except Exception:
            log.exception("job %s of %s: advancing it failed; the stall sweep retries", job_id, workspace)

    async def advance_stalled(self) -> int:
        """Advance the active jobs whose stage has every task ended but did not move on (a
        failure after their last result was recorded); how many were advanced."""
        advanced = 0
        for row in await self.repo.stalled_jobs():
            try:
                await self.advance(row["workspace"], row["job_id"])
                advanced += 1
            except Exception as error:  # staging away, say: the next sweep tries again
                log.warning("job %s of %s: cannot advance it yet: %s", row["job_id"], row["workspace"], error)
        return advanced

    async def close(self) -> None:
        """Cancel the background work (the scheduler stops)."""
        await self.early.close()
        for task in list(self._background):
            task.cancel()

    async def _processing_runs(self, workspace: str, job_id: str) -> bool:
        """Whether the job's processing stage runs (an early registration may start)."""
        job = await self.repo.job(workspace, job_id)
        if job["state"] != "running" or job["current_stage"] != planning.PROCESSING:
            return False
        if job["kind"] == ESTIMATE:
            return False
        return any(
            s.name == planning.PROCESSING and s.state == "running"
            for s in await self.repo.stages(workspace, job_id)
        )

    async def _register_early(self, workspace: str, job_id: str) -> None:
        """Register `<job>-processing` while the stage runs, so its first records can be listed
        and downloaded (early_registration.py), and hold it for the job like its input batch
        (batch_holds.py renews both until the job ends)."""
        batch_id = f"{job_id}-processing"
        await self.staging.register_output(
            workspace, batch_id, common_pb2.BATCH_TYPE_PROCESSING_RESULTS, job_id
        )
        job = await self.repo.job(workspace, job_id)
        await batch_holds.hold_output(self.staging, workspace, job_id, job["batch_id"], batch_id)

    async def _register_processing(self, workspace: str, job_id: str) -> None:
        """The processing batch's final registration, after any early one in flight."""

        async def register() -> None:
            await self.staging.register_output(
                workspace, f"{job_id}-processing", common_pb2.BATCH_TYPE_PROCESSING_RESULTS, job_id
            )

        await self.early.finally_(workspace, job_id, register)

    async def handle_progress(self, progress: tasks_pb2.TaskProgress) -> None:
        recorded = await self.tasks.record_progress(progress)
        if recorded is None:
            return
        if recorded.started:
            await self._log_started(recorded, progress)
        await self.events.progress(recorded.workspace, recorded.job_id)

    async def _log_started(self, recorded: RecordedProgress, progress: tasks_pb2.TaskProgress) -> None:
        """The log line of a delivery that began: a first start, or a redelivery and why."""
        if recorded.deliveries > 1:
            await self.logs.add(
                recorded.workspace,
                recorded.job_id,
                WARNING,
                f"task redelivered to worker {progress.worker_id} (delivery {recorded.deliveries}): "
                "an earlier delivery did not finish",
                task_id=progress.task_id,
            )
        else:
            await self.logs.add(
                recorded.workspace,
                recorded.job_id,
                INFO,
                f"task started on worker {progress.worker_id}",
                task_id=progress.task_id,
            )

    async def handle_results(self, results: list[tasks_pb2.TaskResult]) -> None:
        """Record a group of results in one transaction, dispatch once, then act on what the
        counters say for each job the group touched: advance the jobs whose stage has every task
        ended, ask for the processing batch's early registration.

        Nothing after the commit raises: one job's trouble (staging away while its stage
        completes) is logged and leaves the others alone, and the stall sweep (`advance_stalled`)
        advances that job later; the results are recorded, so they are acked. The freed slots
        are filled first: a worker waits for its next task only as long as the commit and one
        dispatch take, not also for the log lines and events of every job the group touched.
        """
        async with self._recording:
            group = await self.tasks.record_results(results)
        try:
            await self.dispatch()
        except Exception as error:  # the tick dispatches again within a second
            log.warning("cannot dispatch after recording results: %s", error)
        touched: dict[tuple[str, str], list[tuple[tasks_pb2.TaskResult, RecordedResult]]] = {}
        for result, recorded in zip(results, group.results, strict=True):
            if recorded is None:
                log.warning("result for unknown task %s ignored", result.task_id)
                continue
            touched.setdefault((recorded.workspace, recorded.job_id), []).append((result, recorded))
        stages: dict[tuple[str, str], list[StageCounts]] = {}
        for counts in group.stages:
            stages.setdefault((counts.workspace, counts.job_id), []).append(counts)
        for key in sorted(touched):
            try:
                await self._after_results(key[0], key[1], touched[key], stages.get(key, []))
            except Exception:
                log.exception(
                    "job %s of %s: acting on its results failed; the stall sweep retries", key[1], key[0]
                )

    async def _after_results(
        self,
        workspace: str,
        job_id: str,
        recorded: list[tuple[tasks_pb2.TaskResult, RecordedResult]],
        stages: list[StageCounts],
    ) -> None:
        """One job's part of a recorded group: its log lines, progress, advance."""
        progressed = False
        for result, done in recorded:
            if done.first:
                if done.state == "failed":
                    await self.logs.add(
                        workspace, job_id, ERROR, f"task failed: {result.error}", task_id=result.task_id
                    )
                progressed = True
            elif result.stopped:
                await self.logs.add(
                    workspace,
                    job_id,
                    INFO,
                    f"task stopped on worker {result.worker_id} after {result.items_done} images",
                    task_id=result.task_id,
                )
        if progressed:
            await self.events.progress(workspace, job_id)
        if any(counts.all_ended for counts in stages):
            await self.advance(workspace, job_id)
        elif any(c.stage == planning.PROCESSING and c.tasks_ended > 0 for c in stages):
            self.early.request(workspace, job_id)

    async def handle_worker_log(self, job_uid: str, record: tasks_pb2.WorkerLog) -> None:
        job = await self.repo.job_by_uid(job_uid)
        if job is None:
            return
        await self.logs.add(
            job["workspace"],
            job["job_id"],
            record.severity,
            record.message,
            source=record.worker_id or "worker",
            task_id=record.task_id,
            time=record.time or None,
        )

    async def handle_max_deliveries(self, task_id: str, deliveries: int) -> None:
        """A task reached its last delivery without a result: it fails, and the job goes on."""
        error = (
            f"no result after {deliveries} deliveries: each worker that took the task stopped "
            "before finishing it (killed, or out of memory?)"
        )
        recorded = await self.tasks.fail_task(task_id, error)
        if recorded is None:
            return
        await self.logs.add(
            recorded.workspace, recorded.job_id, ERROR, f"task failed: {error}", task_id=task_id
        )
        await self.advance(recorded.workspace, recorded.job_id)
        await self.dispatch()

    async def requeue_stranded(self, idle_s: float) -> None:
        """Publish again the tasks nobody reported on for `idle_s` (never leave one stranded),
        of the machine types that have live workers (else they wait in the queue for one)."""
        alive = [kind for kind in KINDS if self.workers.alive(kind)]
        if not alive:
            return
        for row in await self.tasks.requeue_stranded(idle_s, alive):
            await self.logs.add(
                row["workspace"],
                row["job_id"],
                WARNING,
                f"no worker reported on the task for {idle_s:.0f} s: publishing it again",
                task_id=row["task_id"],
            )
        await self.dispatch()

    async def enforce_runtime_caps(self) -> None:
        for row in await self.repo.jobs_over_cap():
            reason = (
                f"runtime limit reached: {row['used']:.1f} s of machine time used, "
                f"the cap is {row['max_runtime_s']:g} s"
            )
            await self.halt(row["workspace"], row["job_id"], "stopped", reason)

    async def abort(self, workspace: str, job_id: str) -> None:
        job = await self.repo.job(workspace, job_id)
        if job["state"] in ENDED:
            raise FailedPrecondition(
                f"job '{job_id}' already ended ({job['state'].replace('_', ' ')}): nothing to abort"
            )
        if not await self.halt(workspace, job_id, "aborted", "aborted by its owner"):
            raise FailedPrecondition(f"job '{job_id}' already ended: nothing to abort")

    async def halt(self, workspace: str, job_id: str, state: str, reason: str) -> bool:
        """End an active job as aborted or stopped: withdraw its queued tasks, stop its running
        ones, keep what was processed. False when the job had ended already."""
        async with self._advancing, self.dispatcher.lock:
            async with self._recording:
                halted = await self.repo.halt_job(workspace, job_id, state, reason)
            if halted is None:
                return False
            for kind in KINDS:
                try:
                    await self.js.purge_stream(
                        messaging.TASKS_STREAM, subject=messaging.task_subject(kind, halted.job_uid)
                    )
                except Exception as error:  # workers refuse them anyway once told to stop
                    log.warning("cannot withdraw queued tasks of job %s: %s", job_id, error)
        await self.send_stop(halted.job_uid, job_id, halted.attempt, reason)
        try:
            await self._register_processing(workspace, job_id)
        except Exception as error:
            log.warning("cannot register the processing results of job %s: %s", job_id, error)
        self.early.forget(workspace, job_id)
        event = events_pb2.EVENT_TYPE_JOB_ABORTED if state == "aborted" else events_pb2.EVENT_TYPE_JOB_STOPPED
        await self.events.emit(workspace, job_id, event, stage=halted.stage, message=reason)
        await self.logs.add(workspace, job_id, WARNING, f"job {state}: {reason}")
        return True

    async def send_stop(self, job_uid: str, job_id: str, attempt: int, reason: str) -> None:
        stop = tasks_pb2.StopTasks(job_id=job_id, attempt=attempt, reason=reason)
        await self.nc.publish(messaging.control_subject(job_uid), stop.SerializeToString())

    async def resend_stops(self) -> None:
        for row in await self.repo.recently_halted(RESEND_STOP_FOR_S):
            await self.send_stop(row["job_uid"], row["job_id"], row["attempt"], "job ended")

    async def restart(self, workspace: str, request: scheduler_pb2.RestartJobRequest) -> None:
        job_id = validate_id(request.job_id, "job id")
        job = await self.repo.job(workspace, job_id)
        machine = None
        if request.machine_type:
            machine = MACHINE_NAMES.get(request.machine_type)
            if machine is None:
                raise InvalidArgument("machine type must be cpu or gpu")
        cap = request.max_runtime_seconds if request.HasField("max_runtime_seconds") else None
        limits = job_limits(request.workers_per_machine, request.max_parallel_tasks, cap)
        rate = None
        if request.HasField("max_image_failure_rate"):
            rate = request.max_image_failure_rate
            if not 0.0 <= rate <= 1.0:
                raise InvalidArgument("max image failure rate must be between 0 and 1")
        if job["state"] not in RESTARTABLE:  # checked again under the job's lock by restart_job
            raise FailedPrecondition(not_restartable(job_id, job["state"]))
        effective_cap = limits.max_runtime_s if cap is not None else float(job["max_runtime_s"])
        used = await self.repo.machine_seconds(workspace, job_id)
        if effective_cap > 0 and used >= effective_cap:
            raise FailedPrecondition(
                f"job '{job_id}' has used {used:.1f} s of machine time and its runtime cap is "
                f"{effective_cap:g} s: restart it with a larger --max-runtime-seconds"
            )
        await batch_holds.hold_job(self.staging, workspace, job_id, job["batch_id"])
        async with self._recording:
            attempt = await self.repo.restart_job(
                workspace,
                job_id,
                JobChanges(
                    machine_type=machine,
                    workers_per_machine=request.workers_per_machine or None,
                    max_runtime_s=limits.max_runtime_s if cap is not None else None,
                    max_parallel_tasks=request.max_parallel_tasks or None,
                    max_failure_rate=rate,
                ),
                planning.for_attempt,
            )
        await self.events.emit(
            workspace, job_id, events_pb2.EVENT_TYPE_JOB_RESTARTED, message=f"attempt {attempt}"
        )
        await self.logs.add(workspace, job_id, INFO, f"job restarted: attempt {attempt}")
        await self.advance(workspace, job_id)
        await self.dispatch()

    async def advance(self, workspace: str, job_id: str) -> None:
        """Complete finished stages, start the next one, finish or fail the job.

        Runs one at a time: the results loop and the start-up recovery both call it, and two
        interleaved runs could otherwise act on stages the other has just moved.
        """
        async with self._advancing:
            await self._advance(workspace, job_id)

    async def _advance(self, workspace: str, job_id: str) -> None:
        job = await self.repo.job(workspace, job_id)
        if job["state"] not in ("queued", "running") or job["kind"] == ESTIMATE:
            return  # an estimate's sample is ended by estimate.py: no output batch
        stages = await self.repo.stages(workspace, job_id)
        for stage in stages:
            if stage.state == "completed":
                continue
            if stage.state == "pending" and stage.tasks_total == 0:
                await self._start_export(job, stage, stages)
                return
            if stage.state != "running" or stage.tasks_total == 0 or stage.tasks_done < stage.tasks_total:
                return
            if not await self._complete_stage(job, stage):
                return
        processing = stages[0]
        errors = ""
        state, event = "completed", events_pb2.EVENT_TYPE_JOB_COMPLETED
        if processing.items_failed:
            state, event = "completed_with_errors", events_pb2.EVENT_TYPE_JOB_COMPLETED_WITH_ERRORS
            errors = f"{processing.items_failed} of {processing.items_total} {_items(job)} failed"
        await self.repo.set_job_state(workspace, job_id, state, error=errors)
        self.early.forget(workspace, job_id)
        said = state.replace("_", " ") + (f": {errors}" if errors else "")
        await self.events.emit(workspace, job_id, event, message=said)
        await self.logs.add(workspace, job_id, WARNING if errors else INFO, f"job {said}")

    async def _complete_stage(self, job: asyncpg.Record, stage: StageProgress) -> bool:
        """Register the stage's output batch; False when the job failed instead."""
        workspace, job_id = job["workspace"], job["job_id"]
        batch_type = (
            common_pb2.BATCH_TYPE_PROCESSING_RESULTS
            if stage.name == planning.PROCESSING
            else common_pb2.BATCH_TYPE_EXPORT
        )
        if stage.name == planning.PROCESSING:
            await self._register_processing(workspace, job_id)
        else:
            await self.staging.register_output(workspace, stage.output_batch_id, batch_type, job_id)
        if stage.name == planning.EXPORT and job["input_type"] == "videos":
            # The exporter joined the annotated videos into the processing batch's videos/: count
            # them there too, so its content lists them (the dashboard's gallery plays them).
            await self.staging.register_output(
                workspace, f"{job_id}-processing", common_pb2.BATCH_TYPE_PROCESSING_RESULTS, job_id
            )
        rate = stage.items_failed / stage.items_total if stage.items_total else 0.0
        max_rate = float(job["max_failure_rate"])
        if stage.name == planning.PROCESSING and rate > max_rate:
            error = (
                f"{stage.items_failed} of {stage.items_total} {_items(job)} failed ({rate:.1%}), "
                f"above the maximum failure rate of {max_rate:.1%}"
            )
            await self._fail(workspace, job_id, stage.name, error)
            return False
        if stage.name == planning.EXPORT and stage.failed:
            failed = await self.tasks.failed_tasks(workspace, job_id, stage.name)
            error = f"export failed: {failed[0]['error'] if failed else 'unknown error'}"
            await self._fail(workspace, job_id, stage.name, error)
            return False
        await self.repo.set_stage_state(workspace, job_id, stage.name, "completed")
        return True

    async def _fail(self, workspace: str, job_id: str, stage: str, error: str) -> None:
        self.early.forget(workspace, job_id)
        await self.repo.set_stage_state(workspace, job_id, stage, "failed")
        await self.repo.set_job_state(workspace, job_id, "failed", error=error)
        await self.events.emit(
            workspace, job_id, events_pb2.EVENT_TYPE_JOB_FAILED, stage=stage, message=error
        )
        await self.logs.add(workspace, job_id, ERROR, f"job failed: {error}")

    async def _start_export(
        self, job: asyncpg.Record, stage: StageProgress, stages: list[StageProgress]
    ) -> None:
        workspace, job_id = job["workspace"], job["job_id"]
        processing_batch = f"{job_id}-processing"
        failed = await self.tasks.failed_tasks(workspace, job_id, stages[0].name)
        task = planning.export_task(
            job_uid=job["job_uid"],
            job_id=job_id,
            workspace=workspace,
            input_url=self.store.batch_url(workspace, processing_batch),
            output_url=self.store.batch_url(workspace, stage.output_batch_id),
            aggregation_format=format_enum(job["aggregation_format"]),
            item_count=stage.items_total,
            attempt=job["attempt"],
            video_job=job["input_type"] == "videos",
            failed_tasks=[
                planning.failed_task(r["task_id"], bytes(r["payload"]), r["error"]) for r in failed
            ],
        )
        if not await self.repo.start_stage(workspace, job_id, stage.name, [task]):
            return  # started already
        await self.events.emit(workspace, job_id, events_pb2.EVENT_TYPE_STAGE_STARTED, stage=stage.name)
        await self.logs.add(workspace, job_id, INFO, f"{stage.name} stage started")
        await self.dispatch()

    def notice(self, state: str, stage: StageProgress | None) -> str:
        """Why an active job waits, in plain words; empty when nothing is wrong."""
        if state not in ("queued", "running") or stage is None:
            return ""
        kind = stage.machine_type
        if self.workers.alive(kind) or not self.workers.informed:
            return ""
        who = "no exporter is running" if kind == "export" else f"no {kind} worker is running"
        return f"{who}: the {stage.name} stage waits until one starts"
