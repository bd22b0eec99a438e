"""Running one task: read and decode its images, run the workflow in batches, write results.

Blocking work (storage, decoding, models) runs in threads so a worker's slots overlap; the
coroutine yields between groups of batches, so the slot can keep the task alive, report
progress and stop early.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from sluice import storage
from sluice.errors import InvalidArgument, Unavailable
from sluice.v1 import tasks_pb2
from sluice.workflow import CompiledWorkflow, to_json_value
from sluice_worker.inputs import LoadedInput, load_inputs
from sluice_worker.records import (
    ImageRecord,
    image_output_name,
    result_object_name,
    to_jsonl,
)

log = logging.getLogger(__name__)
JPEG_QUALITY = 90


class TaskRejected(Exception):
    """The task cannot succeed however often it runs (its workflow refuses its input)."""


class AttemptFailed(Exception):
    """This run of the task failed as a whole (the workflow raised on every image): worth a retry."""


@dataclass(frozen=True)
class TaskOutcome:
    items_done: int
    items_failed: int
    stopped: bool = False
    """The task stopped early when asked; its result object holds the images done so far."""
    errors: tuple[str, ...] = ()
    """The reasons of the images that failed."""
    group_size: int = 0
    """The group size the task ended on (images per thread hop); the next task of the same
    workflow starts there instead of growing again from one batch."""
    per_image_s: float | None = None
    """The workflow's seconds per image in this task (reading and decoding left out); None when
    no image ran. What `sluice_worker.pace` sizes the next task's batches by."""


@dataclass
class TaskControl:
    """How a running task hears it should stop, and tells how far it got."""

    should_stop: Callable[[], bool] = lambda: False
    report: Callable[[int, int], None] = lambda done, failed: None


WORKFLOW_FAILED = "workflow failed: "


def _failure(error: Exception) -> str:
    text = " ".join(str(error).split())  # one line: error texts of ONNX Runtime end in newlines
    return f"{WORKFLOW_FAILED}{type(error).__name__}: {text}"


def run_workflow(
    workflow: CompiledWorkflow,
    images: Sequence[np.ndarray],
    params: dict[str, Any],
    metadata: Sequence[dict[str, Any]] | None = None,
) -> list[dict[str, object] | str]:
    """Outputs per image, or an error reason for each image the workflow fails on.

    A failing batch is retried one image at a time so that one bad image fails alone.
    InvalidArgument (the workflow refuses its parameters) fails every image alike, and
    Unavailable (the inference server is down) is worth retrying the task for: both raised.
    """
    try:
        return list(workflow.run(images, params, metadata))
    except (InvalidArgument, Unavailable):
        raise
    except Exception as error:
        if len(images) == 1:
            log.exception("workflow failed on an image")
            return [_failure(error)]
    return [
        result
        for i, image in enumerate(images)
        for result in run_workflow(workflow, [image], params, None if metadata is None else [metadata[i]])
    ]


def task_parameters(task: tasks_pb2.Task) -> dict[str, Any]:
    """The workflow parameters the job was given (the scheduler checked they are a JSON object)."""
    params = json.loads(task.workflow_params_json or "{}")
    if not isinstance(params, dict):
        raise TaskRejected("workflow parameters must be a JSON object")
    return params


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("cannot encode image as JPEG")
    return encoded.tobytes()


def process_batch(
    task: tasks_pb2.Task,
    workflow: CompiledWorkflow,
    loaded: Sequence[LoadedInput],
    params: dict[str, Any],
) -> list[ImageRecord]:
    """Run the workflow with `params` on the decodable inputs and save image outputs (blocking)."""
    images = [item.image for item in loaded if item.image is not None]
    try:
        results = iter(run_workflow(workflow, images, params))
    except InvalidArgument as error:
        raise TaskRejected(f"workflow cannot run: {error.message}") from None
    records = []
    for item in loaded:
        if item.image is None:
            records.append(ImageRecord(item.name, task.task_id, error=item.error))
            continue
        result = next(results)
        if isinstance(result, str):
            records.append(ImageRecord(item.name, task.task_id, error=result))
        else:
            records.append(_record(task, workflow, item.name, item.image, result))
    return records


def process_group(
    task: tasks_pb2.Task,
    workflow: CompiledWorkflow,
    loaded: Sequence[LoadedInput],
    batch_size: int,
    params: dict[str, Any],
) -> tuple[list[ImageRecord], float]:
    """Run the workflow over `loaded` in batches of `batch_size` (blocking): the records, and the
    seconds it took (what sizes the next group)."""
    started = time.perf_counter()
    records: list[ImageRecord] = []
    for start in range(0, len(loaded), batch_size):
        records.extend(process_batch(task, workflow, loaded[start : start + batch_size], params))
    return records, time.perf_counter() - started


GROUP_S = 0.05
"""About how long one group of batches should take: a thread hop costs some 0.3 ms, so a group
much shorter than this spends its time hopping, and a much longer one reports progress and hears
a stop request late."""
MAX_GROUP = 256
"""The most images one group holds (decoded at once, so this bounds a slot's memory)."""


def next_group_size(size: int, batch_size: int, elapsed_s: float) -> int:
    """The size of the next group, from how long a group of `size` images took: as many whole
    batches as fit in GROUP_S, at least one, at most MAX_GROUP images (and at most twice the
    last size, so one fast group does not make the next one huge)."""
    per_image = elapsed_s / max(size, 1)
    fit = int(GROUP_S / per_image) if per_image > 0 else MAX_GROUP
    batches = max(1, min(fit, 2 * size, MAX_GROUP) // batch_size)
    return batches * batch_size


def _record(
    task: tasks_pb2.Task,
    workflow: CompiledWorkflow,
    name: str,
    image: np.ndarray,
    result: dict[str, object],
) -> ImageRecord:
    """The record of an image the workflow ran on; saves its image outputs when asked."""
    outputs = {
        output: to_json_value(value, image.shape)
        for output, value in result.items()
        if output not in workflow.image_outputs
    }
    image_outputs: dict[str, str] = {}
    if task.save_image_outputs:
        for output in task.image_outputs_to_save or workflow.image_outputs:
            value = result.get(output)
            if isinstance(value, np.ndarray):
                object_name = image_output_name(name, output)
                storage.write_bytes(task.output_url, object_name, encode_jpeg(value))
                image_outputs[output] = object_name
    return ImageRecord(name, task.task_id, outputs=outputs, image_outputs=image_outputs)


async def run_task(
    task: tasks_pb2.Task,
    workflow: CompiledWorkflow,
    batch_size: int,
    control: TaskControl | None = None,
    group_size: int = 0,
) -> TaskOutcome:
    """Process every input of `task` and write its one result object.

    `group_size` is where the last task of this workflow left its group size (0: one batch).
    Between groups of batches it reports progress and, when `control` says so, stops: the
    result object then holds the images done so far (a rerun of the task overwrites it).
    Raises TaskRejected when the task can never succeed, AttemptFailed when the workflow raised
    on every image (a retry may succeed), OSError when the store fails.
    """
    control = control or TaskControl()
    names = list(task.input_names)
    params = task_parameters(task)
    records: list[ImageRecord] = []
    raised = decoded = failed = 0
    workflow_s = 0.0
    stopped = False
    # Images go through in groups of whole batches, each group one thread hop, its size set by
    # how long the last took (one batch for a heavy model, many for a light one); the next
    # group is read and decoded while the models work on this one.
    size = max(batch_size, group_size - group_size % batch_size)  # whole batches
    start = 0
    loading: asyncio.Task[list[LoadedInput]] | None = None
    try:
        while start < len(names):
            if control.should_stop():
                stopped = True
                break
            if loading is None:
                loading = asyncio.create_task(
                    asyncio.to_thread(load_inputs, task.input_url, names[start : start + size])
                )
            loaded = await loading
            loading = None
            start += len(loaded)
            if start < len(names):
                ahead = names[start : start + size]
                loading = asyncio.create_task(asyncio.to_thread(load_inputs, task.input_url, ahead))
            group, elapsed_s = await asyncio.to_thread(
                process_group, task, workflow, loaded, batch_size, params
            )
            size = next_group_size(len(loaded), batch_size, elapsed_s)
            workflow_s += elapsed_s
            records.extend(group)
            decoded += sum(item.image is not None for item in loaded)
            raised += sum(1 for r in group if r.error is not None and r.error.startswith(WORKFLOW_FAILED))
            failed += sum(not r.ok for r in group)  # counted per group: a long task stays linear
            control.report(len(records), failed)
    finally:
        if loading is not None:
            loading.cancel()
            with contextlib.suppress(BaseException):
                await loading
    if not stopped and decoded and raised == decoded:
        first = next(r.error for r in records if r.error and r.error.startswith(WORKFLOW_FAILED))
        raise AttemptFailed(f"the workflow raised on every image of the task ({first})")
    result_name = result_object_name(task.task_id)
    await asyncio.to_thread(storage.write_bytes, task.output_url, result_name, to_jsonl(records))
    return TaskOutcome(
        items_done=len(records),
        items_failed=failed,
        stopped=stopped,
        errors=tuple(r.error for r in records if r.error is not None),
        group_size=size,
        per_image_s=workflow_s / len(records) if records else None,
    )
