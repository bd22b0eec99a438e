"""EstimateJob: run the workflow on a small random sample of the batch, and say what the job
would cost.

The request is checked exactly as CreateJob checks it (`Coordinator.check_job`). The sample is an
internal job of kind 'estimate' (id `estimate:<hex>`, hidden from ListJobs, no events, no export
stage, no output batch) whose tasks go through the normal dispatch path to real workers of the
job's machine type, at the highest priority. Its machine time is usage like any job's.

The sample runs in two rounds, each of as many tasks at once as one worker would run of the job
(at most MAX_SAMPLE_TASKS), so its time per item includes the slots' contention for the machine:
first one batch's worth of items per slot, which pays the start-up a fresh worker pays once
(loading models), then the measured tasks: 2 % of the images (at least 32, at most 64), or for
videos windows of about 32 processed frames. The measured tasks' machine time per item, times
the job's items, is the job's machine time. Wall time places the job's tasks on the slots it
would get, each taking its items times that rate. The export stage is not estimated (it
aggregates records: small).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import asyncpg

from sluice import messaging, storage
from sluice.errors import AlreadyExists, FailedPrecondition, Unavailable
from sluice.v1 import common_pb2, scheduler_pb2, tasks_pb2
from sluice_scheduler import planning
from sluice_scheduler.coordinator import ESTIMATE, MAX_PRIORITY, CheckedJob, Coordinator
from sluice_scheduler.dispatcher import KINDS
from sluice_scheduler.repository import NewTask
from sluice_scheduler.video_planning import video_tasks
from sluice_scheduler.workers_seen import ALIVE_FOR_S

log = logging.getLogger(__name__)

SAMPLE_MIN = 32
SAMPLE_MAX = 64
SAMPLE_FRACTION = 0.02
MIN_ITEMS_PER_SAMPLE_TASK = 16
"""Measured tasks have at least this many items, so what a task costs beyond its items stays small."""
MAX_SAMPLE_TASKS = 4
WARMUP_ITEMS = 8
"""A worker's batch of images (or frames): what each slot runs first, paying the start-up."""
SAMPLE_VIDEO_FRAMES = 32
SAMPLE_VIDEO_S = (2.0, 30.0)
"""A measured video window has about SAMPLE_VIDEO_FRAMES processed frames, within these seconds."""
DEADLINE_S = 600.0
STALE_AFTER_S = DEADLINE_S + 60.0
"""An estimate job still active this long after it was created lost its caller (a restart): ended."""
POLL_S = 0.25
OUTPUTS_FOLDER = ".estimates"
"""The sample's outputs go to <store>/<workspace>/.estimates/<uid>/ (no batch id starts with '.'),
and are removed when the estimate ends."""
MACHINE_ENUMS = {"cpu": common_pb2.MACHINE_TYPE_CPU, "gpu": common_pb2.MACHINE_TYPE_GPU}


def sample_size(total: int) -> int:
    """How many items the sample runs: 2 % of the batch, at least 32 and at most 64."""
    return min(total, max(SAMPLE_MIN, math.ceil(total * SAMPLE_FRACTION)), SAMPLE_MAX)


def sample_tasks_count(items: int, slots_per_worker: int) -> int:
    """Sample tasks run at once: as many as one worker would run of the job, each of 16+ items."""
    return max(1, min(slots_per_worker, items // MIN_ITEMS_PER_SAMPLE_TASK, MAX_SAMPLE_TASKS))


def wall_seconds(task_items: Sequence[int], slots: int, per_item_s: float) -> float:
    """When the last of the tasks ends, each taking its items times `per_item_s`, placed in order
    on whichever of `slots` frees first."""
    free = [0.0] * max(slots, 1)
    end = 0.0
    for items in task_items:
        start = heapq.heappop(free)
        finish = start + items * per_item_s
        end = max(end, finish)
        heapq.heappush(free, finish)
    return end


@dataclass(frozen=True)
class Sample:
    """The sample's tasks: one short task per slot to warm the worker, then the measured ones."""

    warmup: list[NewTask]
    measured: list[NewTask]

    @property
    def items(self) -> int:
        return sum(t.item_count for t in self.warmup + self.measured)


def _template(
    workspace: str, checked: CheckedJob, request: scheduler_pb2.CreateJobRequest, output_url: str
) -> tasks_pb2.Task:
    """What every task of the sample carries (as CreateJob's tasks do; outputs go to `output_url`)."""
    return tasks_pb2.Task(
        job_id=checked.job_id,
        workspace=workspace,
        input_url=checked.input_url,
        output_url=output_url,
        workflow_json=checked.workflow["definition"],
        workflow_params_json=checked.params_json,
        save_image_outputs=checked.save_images,
        image_outputs_to_save=list(request.image_outputs_to_save),
        aggregation_format=request.aggregation_format or common_pb2.AGGREGATION_FORMAT_JSONL,
        machine_type=MACHINE_ENUMS[checked.machine],
        attempt=1,
    )


def _image_tasks(template: tasks_pb2.Task, uid: str, chunks: list[list[str]], first: int) -> list[NewTask]:
    """Processing tasks of these images, numbered from `first` (`<uid>-p<number>`)."""
    tasks = []
    for number, names in enumerate(chunks, start=first):
        task = tasks_pb2.Task()
        task.CopyFrom(template)
        task.task_id = f"{uid}-p{number:05d}"
        task.stage = planning.PROCESSING
        task.input_names[:] = names
        tasks.append(NewTask(task.task_id, planning.PROCESSING, len(names), task.SerializeToString()))
    return tasks


def _split(names: list[str], parts: int) -> list[list[str]]:
    size = math.ceil(len(names) / parts)
    return [names[start : start + size] for start in range(0, len(names), size)]


def _image_sample(template: tasks_pb2.Task, uid: str, names: list[str], slots_per_worker: int) -> Sample:
    """Images drawn at random: a batch's worth per slot to warm up, then the measured ones in as
    many tasks as one worker would run of the job at once."""
    size = sample_size(len(names))
    count = sample_tasks_count(size, slots_per_worker)
    warmup = sorted(random.sample(names, min(len(names), WARMUP_ITEMS * count)))
    measured = sorted(random.sample(names, size))
    warmup_tasks = _image_tasks(template, uid, _split(warmup, count), 0)
    return Sample(warmup_tasks, _image_tasks(template, uid, _split(measured, count), len(warmup_tasks)))


async def _video_windows(
    template: tasks_pb2.Task,
    uid: str,
    checked: CheckedJob,
    frames: dict[str, int],
    count: int,
    first: int,
    frames_per_window: int,
) -> list[NewTask]:
    """`count` windows of about `frames_per_window` processed frames (no warm-up): each the window
    of a video, both drawn at random in proportion to their frames to process."""
    videos = [o for o in checked.objects if frames.get(o.name, 0) > 0]
    if not videos:
        raise FailedPrecondition(f"batch '{checked.batch.batch_id}' has no frame to process")
    tasks: list[NewTask] = []
    for video in random.choices(videos, weights=[frames[v.name] for v in videos], k=count):
        rate = checked.max_fps or (video.video.fps if video.video.fps > 0 else 30.0)
        window = min(max(frames_per_window / rate, SAMPLE_VIDEO_S[0]), SAMPLE_VIDEO_S[1])
        windows = await video_tasks(template, uid, checked.input_url, [video], checked.max_fps, window)
        chosen = random.choices(windows.tasks, weights=[t.item_count for t in windows.tasks])[0]
        task = tasks_pb2.Task.FromString(chosen.payload)
        task.task_id = f"{uid}-p{first + len(tasks):05d}"
        task.video.warmup_start_s = task.video.start_s
        tasks.append(NewTask(task.task_id, planning.PROCESSING, chosen.item_count, task.SerializeToString()))
    return tasks


async def _video_sample(
    template: tasks_pb2.Task, uid: str, checked: CheckedJob, frames: dict[str, int], slots_per_worker: int
) -> Sample:
    """Short windows to warm up, then windows of about 32 frames, one per slot of a worker."""
    count = max(1, min(slots_per_worker, MAX_SAMPLE_TASKS))
    warmup = await _video_windows(template, uid, checked, frames, count, 0, WARMUP_ITEMS)
    measured = await _video_windows(template, uid, checked, frames, count, count, SAMPLE_VIDEO_FRAMES)
    return Sample(warmup, measured)


async def _job_tasks(
    coordinator: Coordinator, checked: CheckedJob, template: tasks_pb2.Task, uid: str
) -> tuple[list[int], dict[str, int]]:
    """The items of each task the job would have, and (videos) the frames to process per video."""
    if not checked.videos:
        return planning.task_sizes(len(checked.names), coordinator.options.task_size), {}
    plan = await video_tasks(
        template, uid, checked.input_url, checked.objects, checked.max_fps, checked.segment_s
    )
    frames: dict[str, int] = {}
    for task in plan.tasks:
        name = tasks_pb2.Task.FromString(task.payload).video.name
        frames[name] = frames.get(name, 0) + task.item_count
    return [t.item_count for t in plan.tasks], frames


def _job_slots(coordinator: Coordinator, checked: CheckedJob, tasks: int) -> int:
    """Slots the job would hold at once: the live workers' slots within the job's limits."""
    alive = coordinator.workers.alive(checked.machine)
    slots = coordinator.workers.slots(checked.machine)
    if checked.limits.workers_per_machine > 0:
        slots = min(slots, checked.limits.workers_per_machine * max(alive, 1))
    if checked.limits.max_parallel_tasks > 0:
        slots = min(slots, checked.limits.max_parallel_tasks)
    return max(1, min(slots, tasks))


async def _wait_for_workers(coordinator: Coordinator, machine: str) -> None:
    """FailedPrecondition when no worker of `machine` is live (after heartbeats had time to come)."""
    deadline = time.monotonic() + ALIVE_FOR_S + 1
    workers = coordinator.workers
    while not workers.alive(machine) and not workers.informed and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
    if not workers.alive(machine):
        raise FailedPrecondition(
            f"no {machine} worker is running: an estimate runs a sample of the batch on one; "
            "start one and try again"
        )


async def estimate_job(
    coordinator: Coordinator,
    workspace: str,
    request: scheduler_pb2.CreateJobRequest,
    deadline_s: float = DEADLINE_S,
) -> scheduler_pb2.JobEstimate:
    """Check `request` as CreateJob does, run a sample of it, and estimate the whole job."""
    checked = await coordinator.check_job(workspace, request)
    if request.job_id and await coordinator.repo.pool.fetchval(
        "SELECT 1 FROM jobs WHERE workspace=$1 AND job_id=$2", workspace, request.job_id
    ):
        raise AlreadyExists(f"job '{request.job_id}' already exists")
    machine = checked.machine
    await _wait_for_workers(coordinator, machine)
    uid = secrets.token_hex(6)
    checked = replace(checked, job_id=f"{ESTIMATE}:{uid[:10]}")
    output_url = coordinator.store.batch_url(workspace, f"{OUTPUTS_FOLDER}/{uid}")
    template = _template(workspace, checked, request, output_url)

    job_task_items, frames = await _job_tasks(coordinator, checked, template, uid)
    items_total = sum(job_task_items)
    slots = _job_slots(coordinator, checked, len(job_task_items))
    per_worker = math.ceil(slots / max(coordinator.workers.alive(machine), 1))
    if checked.videos:
        sample = await _video_sample(template, uid, checked, frames, per_worker)
    else:
        sample = _image_sample(template, uid, checked.names, per_worker)

    run = SampleRun(coordinator, workspace, checked.job_id, uid, output_url)
    try:
        await run.start(checked, request, sample)
        deadline = time.monotonic() + deadline_s
        failed = await run.wait(sample.warmup, deadline, machine)
        if not failed:
            await run.add(sample.measured)
            failed = await run.wait(sample.measured, deadline, machine)
        per_item = await run.seconds_per_item(sample.measured)
    finally:
        await run.finish()
    if failed:
        raise FailedPrecondition(f"the workflow failed on the sample: {failed}")

    machine_s = per_item * items_total
    return scheduler_pb2.JobEstimate(
        sample_items=sample.items,
        items_total=items_total,
        sample_machine_seconds=await coordinator.repo.machine_seconds(workspace, checked.job_id),
        machine_seconds=machine_s,
        wall_seconds=wall_seconds(job_task_items, slots, per_item),
        credits=machine_s * coordinator.rates.per_second(machine),
        machine_type=MACHINE_ENUMS[machine],
        slots=slots,
    )


class SampleRun:
    """The estimate job of one sample: written, followed in Postgres (where the results loop
    records its tasks), then ended: completed, or aborted when the caller went away or the
    deadline passed."""

    def __init__(
        self, coordinator: Coordinator, workspace: str, job_id: str, uid: str, output_url: str
    ) -> None:
        self.coordinator = coordinator
        self.workspace = workspace
        self.job_id = job_id
        self.uid = uid
        self.output_url = output_url

    async def start(
        self, checked: CheckedJob, request: scheduler_pb2.CreateJobRequest, sample: Sample
    ) -> None:
        """Write the estimate job with its warm-up tasks, and dispatch them."""
        await self.coordinator.repo.create_job(
            {
                "workspace": self.workspace,
                "job_id": self.job_id,
                "job_uid": self.uid,
                "workflow_id": request.workflow_id,
                "workflow_version": checked.workflow["version"],
                "batch_id": request.batch_id,
                "machine_type": checked.machine,
                "workers_per_machine": checked.limits.workers_per_machine,
                "max_parallel_tasks": 0,
                "max_runtime_s": 0.0,
                "priority": MAX_PRIORITY,
                "save_image_outputs": checked.save_images,
                "workflow_params": checked.params_json,
                "image_outputs_to_save": list(request.image_outputs_to_save),
                "aggregation_format": checked.fmt,
                "max_failure_rate": checked.max_rate,
                "input_type": "videos" if checked.videos else "images",
                "max_video_fps": checked.max_fps,
                "video_segment_s": checked.segment_s if checked.videos else 0.0,
                "kind": ESTIMATE,
            },
            [
                {
                    "name": planning.PROCESSING,
                    "machine_type": checked.machine,
                    "output_batch_id": "",
                    "items_total": sample.items,
                }
            ],
            sample.warmup,
        )
        await self.coordinator.dispatch()

    async def add(self, tasks: list[NewTask]) -> None:
        """Add tasks (all at once, so they run side by side) and dispatch them."""
        await self.coordinator.repo.add_tasks(self.workspace, self.job_id, tasks)
        await self.coordinator.dispatch()

    async def _rows(self, tasks: list[NewTask]) -> list[asyncpg.Record]:
        return list(
            await self.coordinator.repo.pool.fetch(
                "SELECT state, error, items_done, machine_s + open_s AS seconds FROM tasks "
                "WHERE workspace=$1 AND job_id=$2 AND task_id = ANY($3::text[]) ORDER BY task_id",
                self.workspace,
                self.job_id,
                [t.task_id for t in tasks],
            )
        )

    async def wait(self, tasks: list[NewTask], deadline: float, machine: str) -> str:
        """Until these tasks ended; the first failed one's error, or ''."""
        while True:
            rows = await self._rows(tasks)
            if rows and all(r["state"] in ("done", "failed") for r in rows):
                return next((r["error"] or "unknown error" for r in rows if r["state"] == "failed"), "")
            if time.monotonic() > deadline:
                raise Unavailable(
                    "the estimate's sample did not finish in time (are the "
                    f"{machine} workers busy with other jobs?): try again later"
                )
            await asyncio.sleep(POLL_S)

    async def seconds_per_item(self, tasks: list[NewTask]) -> float:
        """The machine time per item of these (ended) tasks."""
        rows = await self._rows(tasks)
        items = sum(r["items_done"] for r in rows)
        return sum(float(r["seconds"]) for r in rows) / items if items else 0.0

    async def finish(self) -> None:
        """End the estimate job whatever happened, without events or output batches; remove the
        sample's outputs. Shielded: the caller's cancellation must not leave its tasks running."""
        await asyncio.shield(self._finish())

    async def _finish(self) -> None:
        try:
            await end_estimate(self.coordinator, self.workspace, self.job_id, self.uid)
        except Exception as error:  # the stale-estimate sweep ends it later
            log.warning("cannot end estimate %s: %s", self.job_id, error)
        try:
            await asyncio.to_thread(storage.remove_folder, self.output_url)
        except Exception as error:
            log.warning("cannot remove the outputs of estimate %s: %s", self.job_id, error)


async def end_estimate(coordinator: Coordinator, workspace: str, job_id: str, uid: str) -> None:
    """Completed (or failed) when every task ended; else aborted: queued tasks withdrawn, running
    ones told to stop."""
    repo = coordinator.repo
    counts = await repo.pool.fetchrow(
        "SELECT count(*) FILTER (WHERE state NOT IN ('done', 'failed')) AS unfinished, "
        "count(*) FILTER (WHERE state = 'failed') AS failed FROM tasks WHERE workspace=$1 AND job_id=$2",
        workspace,
        job_id,
    )
    assert counts is not None
    if not counts["unfinished"]:
        await repo.set_job_state(workspace, job_id, "failed" if counts["failed"] else "completed")
        return
    reason = "estimate abandoned (its caller went away or its deadline passed)"
    async with coordinator.dispatcher.lock:
        halted = await repo.halt_job(workspace, job_id, "aborted", reason)
        if halted is None:
            return
        for kind in KINDS:
            with contextlib.suppress(Exception):
                await coordinator.js.purge_stream(
                    messaging.TASKS_STREAM, subject=messaging.task_subject(kind, uid)
                )
    await coordinator.send_stop(uid, job_id, halted.attempt, reason)


async def end_stale_estimates(coordinator: Coordinator) -> None:
    """End estimate jobs whose caller is gone (a scheduler restart lost the call waiting on them)."""
    rows = await coordinator.repo.pool.fetch(
        "SELECT workspace, job_id, job_uid FROM jobs WHERE kind=$1 AND state IN ('queued', 'running') "
        "AND created_at < now() - make_interval(secs => $2)",
        ESTIMATE,
        STALE_AFTER_S,
    )
    for row in rows:
        await end_estimate(coordinator, row["workspace"], row["job_id"], row["job_uid"])
        url = coordinator.store.batch_url(row["workspace"], f"{OUTPUTS_FOLDER}/{row['job_uid']}")
        await asyncio.to_thread(storage.remove_folder, url)
