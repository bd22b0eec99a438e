"""One export, start to finish, against the object store (blocking; run in a thread).

Reads every `results/*.jsonl` under the processing folder, aggregates them, and writes the
aggregate plus every object under `images/` as `export-00000.tar.gz`, `export-00001.tar.gz`, ...
into the export folder. Archive names are derived from the job (its export folder and an index),
so a rerun overwrites its own archives; archives left over from an earlier, longer run are removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sluice import storage
from sluice.v1 import tasks_pb2
from sluice.video.outputs import VIDEOS_PREFIX
from sluice_exporter.aggregate import Record, aggregate, is_result_object, parse_records
from sluice_exporter.archive import (
    Member,
    archive_index,
    archive_name,
    effective_limit,
    pack,
    plan_archives,
)
from sluice_exporter.video_export import join_video_parts, video_records

log = logging.getLogger(__name__)

IMAGES_PREFIX = "images/"


@dataclass(frozen=True)
class ExportSummary:
    records: int
    failed: int
    images: int
    archives: list[str]


def read_records(input_url: str, names: list[str]) -> list[Record]:
    """The records of the result objects `names` (relative to `input_url`), in name order."""
    records: list[Record] = []
    for name in sorted(names):
        records.extend(parse_records(storage.read_bytes(input_url, name), name))
    return records


def remove_stale_archives(output_url: str, keep: int) -> None:
    """Remove archives with an index of `keep` or more (left by an earlier run)."""
    stale: list[str] = []
    for name in storage.list_objects(output_url):
        index = None if "/" in name else archive_index(name)
        if index is not None and index >= keep:
            stale.append(name)
    for name in stale:
        log.info("removing stale archive %s", name)
        storage.remove_object(output_url, name)


def failed_records(failed_tasks: Iterable[tasks_pb2.FailedTask]) -> list[Record]:
    """An error record for each input of the processing tasks that failed on every delivery."""
    return [
        {
            "image": name,
            "task_id": task.task_id,
            "status": "error",
            "error": f"task failed: {task.error}",
            "outputs": {},
            "image_outputs": {},
        }
        for task in failed_tasks
        for name in task.input_names
    ]


def export_job(
    input_url: str,
    output_url: str,
    aggregation_format: int,
    max_archive_bytes: int,
    failed: Iterable[Record] = (),
    *,
    video_tasks: Iterable[tasks_pb2.FailedTask] | None = None,
) -> ExportSummary:
    """Aggregate the results under `input_url` and pack them with its images into `output_url`.

    `failed` are error records of images whose task failed; an image with a record of its own
    (a partial result written before the task failed) keeps that one. For a video job,
    `video_tasks` lists its failed segment tasks instead, and the annotated videos' parts are
    joined first (`video_export`).
    """
    objects = storage.list_objects(input_url)
    if video_tasks is not None:
        objects.update(join_video_parts(input_url, objects))
        records = video_records(input_url, objects, video_tasks)
        summary = aggregate(records, aggregation_format, video=True)
        prefix = VIDEOS_PREFIX
    else:
        result_names = [name for name in objects if is_result_object(name)]
        records = read_records(input_url, result_names)
        seen = {record["image"] for record in records}
        records.extend(record for record in failed if record["image"] not in seen)
        summary = aggregate(records, aggregation_format)
        prefix = IMAGES_PREFIX
    images = sorted(name for name in objects if name.startswith(prefix))
    members = [Member(summary.name, len(summary.data))]
    members.extend(Member(name, objects[name]) for name in images)

    def read(name: str) -> bytes:
        if name == summary.name:
            return summary.data
        return storage.read_bytes(input_url, name)

    stamp = time.time()
    written: list[str] = []
    for index, group in enumerate(plan_archives(members, effective_limit(max_archive_bytes))):
        name = archive_name(index)
        storage.write_bytes(output_url, name, pack(group, read, mtime=stamp))
        written.append(name)
        log.info("wrote %s (%d files)", name, len(group))
    remove_stale_archives(output_url, len(written))
    return ExportSummary(summary.records, summary.failed, len(images), written)
