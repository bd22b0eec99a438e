"""Aggregating a job's per-task result objects into one JSONL or CSV file.

Workers write one object per task, `results/<task_id>.jsonl`, with one JSON line per input image:
`{"image", "task_id", "status": "ok"|"error", "error", "outputs": {...}, "image_outputs": {...}}`.
A task that ran twice under another id leaves two records for the same image; the aggregate keeps
one record per image (an "ok" one when there is one), sorted by image name.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sluice.v1 import common_pb2
from sluice.video.outputs import RECORD_KEYS as VIDEO_KEYS

log = logging.getLogger(__name__)

Record = dict[str, Any]

RESULTS_PREFIX = "results/"
RESULTS_SUFFIX = ".jsonl"
JSONL_NAME = "results.jsonl"
CSV_NAME = "results.csv"
STATUS_COLUMNS = ("status", "error")
IMAGE_KEYS = ("image",)


@dataclass(frozen=True)
class Aggregate:
    """The aggregated file (its name inside the export, and its bytes) and its counts."""

    name: str
    data: bytes
    records: int
    failed: int


def is_result_object(name: str) -> bool:
    """Whether `name` (relative to the processing folder) is a task's result object."""
    return name.startswith(RESULTS_PREFIX) and name.endswith(RESULTS_SUFFIX)


def parse_records(data: bytes, source: str = "", key: str = "image") -> list[Record]:
    """The records of one result object (unparsable lines, and lines without a string `key`,
    are logged and skipped)."""
    records: list[Record] = []
    where = source or "a result object"
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            log.warning("skipping an unparsable line %d of %s", number, where)
            continue
        if not isinstance(record, dict) or not isinstance(record.get(key), str):
            log.warning("skipping line %d of %s: no %s name", number, where, key)
            continue
        records.append(record)
    return records


def is_ok(record: Mapping[str, Any]) -> bool:
    return record.get("status") == "ok"


def collapse(records: Iterable[Record]) -> list[Record]:
    """One record per image, sorted by image name.

    Of several records for one image, the first "ok" one wins; failing that, the first one.
    """
    chosen: dict[str, Record] = {}
    for record in records:
        image = record["image"]
        kept = chosen.get(image)
        if kept is None or (is_ok(record) and not is_ok(kept)):
            chosen[image] = record
    return [chosen[image] for image in sorted(chosen)]


def to_jsonl(records: Iterable[Mapping[str, Any]]) -> bytes:
    """One JSON line per record, as it came."""
    return "".join(_json_text(record) + "\n" for record in records).encode("utf-8")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class CsvColumn:
    """A CSV column after the fixed ones: its header, and the output or image output it shows."""

    header: str
    name: str
    image: bool


def _unique(name: str, suffix: str, taken: set[str]) -> str:
    column = name
    while column in taken:
        column += suffix
    taken.add(column)
    return column


def csv_columns(records: Iterable[Mapping[str, Any]], keys: tuple[str, ...] = IMAGE_KEYS) -> list[CsvColumn]:
    """The columns after the keys (image, or video, frame index, timestamp), status and error.

    One per output name found in any record, then one per image output name, each sorted. A name
    already taken by an earlier column gets the suffix `_output` or `_image`.
    """
    outputs: set[str] = set()
    image_outputs: set[str] = set()
    for record in records:
        outputs.update(_mapping(record.get("outputs")))
        image_outputs.update(_mapping(record.get("image_outputs")))
    taken = {*keys, *STATUS_COLUMNS}
    columns = [CsvColumn(_unique(name, "_output", taken), name, False) for name in sorted(outputs)]
    columns.extend(CsvColumn(_unique(name, "_image", taken), name, True) for name in sorted(image_outputs))
    return columns


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def to_csv(records: list[Record], keys: tuple[str, ...] = IMAGE_KEYS) -> bytes:
    """Columns `keys` (image, or video, frame index, timestamp), status, error, then one per
    output (its JSON text) and one per image output (its object name). A record without a given
    output leaves its cell empty.
    """
    columns = csv_columns(records, keys)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*keys, *STATUS_COLUMNS, *(column.header for column in columns)])
    for record in records:
        outputs = _mapping(record.get("outputs"))
        image_outputs = _mapping(record.get("image_outputs"))
        row: list[str] = [_cell(record.get(key)) for key in keys]
        row += [str(record.get("status") or ""), _cell(record.get("error"))]
        for column in columns:
            if column.image:
                row.append(str(image_outputs.get(column.name) or ""))
            else:
                row.append(_json_text(outputs[column.name]) if column.name in outputs else "")
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8")


def aggregate(records: Iterable[Record], aggregation_format: int, *, video: bool = False) -> Aggregate:
    """Render `records` as CSV or (the default) JSONL: image records collapsed to one per image
    and sorted; video records as they come (already one per frame, in order)."""
    kept = list(records) if video else collapse(records)
    failed = sum(1 for record in kept if not is_ok(record))
    if aggregation_format == common_pb2.AGGREGATION_FORMAT_CSV:
        keys = VIDEO_KEYS if video else IMAGE_KEYS
        return Aggregate(CSV_NAME, to_csv(kept, keys), len(kept), failed)
    return Aggregate(JSONL_NAME, to_jsonl(kept), len(kept), failed)
