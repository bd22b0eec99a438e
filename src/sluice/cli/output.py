"""Printing for people (tables, timestamps, sizes) and for scripts (`--output json`).

JSON output is one document on stdout: a list for list verbs, an object for show verbs. Messages
become objects by `message_document`: proto field names, enums as the lower-case words the
tables show, timestamps as RFC 3339 strings (null when not set), 64-bit integers as numbers,
and a notifications URL as the tables show it (scheme, host and port).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO, cast

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from sluice.job_states import JOB_STATES, SEVERITIES, STAGE_STATES, TASK_STATES
from sluice.v1 import common_pb2
from sluice.webhook_urls import display_url

OUTPUT_FORMATS = ("table", "json")

BATCH_TYPES = {
    common_pb2.BATCH_TYPE_IMAGES: "images",
    common_pb2.BATCH_TYPE_VIDEOS: "videos",
    common_pb2.BATCH_TYPE_PROCESSING_RESULTS: "processing-results",
    common_pb2.BATCH_TYPE_EXPORT: "export",
}
# The words the tables print for an enum's values, by the enum's full name. Any other enum value
# is its name without the enum's prefix, in lower case (EVENT_TYPE_JOB_COMPLETED: job_completed).
TABLE_WORDS: dict[str, Mapping[Any, str]] = {
    "sluice.v1.JobState": JOB_STATES,
    "sluice.v1.StageState": STAGE_STATES,
    "sluice.v1.TaskState": TASK_STATES,
    "sluice.v1.LogSeverity": SEVERITIES,
    "sluice.v1.BatchType": BATCH_TYPES,
}


def when(ts: Timestamp) -> str:
    if not ts.seconds:
        return "-"
    return ts.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC")


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def fields(pairs: Sequence[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)


def add_output_option(parser: argparse.ArgumentParser) -> None:
    """`--output {table,json}` of a list or show verb."""
    parser.add_argument(
        "--output",
        choices=OUTPUT_FORMATS,
        default="table",
        help="table for people (default) or json for scripts (docs/cli.md)",
    )


def wants_json(args: argparse.Namespace) -> bool:
    return getattr(args, "output", "table") == "json"


def enum_word(enum: EnumDescriptor, number: int) -> str:
    """An enum value as the tables print it."""
    words = TABLE_WORDS.get(enum.full_name)
    if words is not None and number in words:
        return words[number]
    value = enum.values_by_number.get(number)
    if value is None:
        return str(number)
    prefix = _enum_prefix(enum)
    return value.name.removeprefix(prefix).lower()


def _enum_prefix(enum: EnumDescriptor) -> str:
    """JobState -> JOB_STATE_ (the prefix every value of a Sluice enum carries)."""
    snake = "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(enum.name))
    return snake.upper() + "_"


def message_document(message: Message) -> dict[str, Any]:
    """A message as a JSON-able object (the rules are in this module's docstring)."""
    from google.protobuf import json_format

    raw = json_format.MessageToDict(
        message,
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=True,
        use_integers_for_enums=True,
        unquote_int64_if_possible=True,
    )
    return _fix_message(cast(Descriptor, message.DESCRIPTOR), raw)


def _fix_message(descriptor: Descriptor, raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in descriptor.fields:
        if field.name not in raw:  # a message or optional field that is not set
            out[field.name] = [] if field.is_repeated else None
            continue
        value = raw[field.name]
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {k: _fix_value(value_field, v) for k, v in value.items()}
        elif field.is_repeated:
            out[field.name] = [_fix_value(field, v) for v in value]
        elif field.name == "notifications_url" and value:
            out[field.name] = display_url(value)
        else:
            out[field.name] = _fix_value(field, value)
    return out


def _fix_value(field: FieldDescriptor, value: Any) -> Any:
    if field.enum_type is not None:
        return enum_word(field.enum_type, int(value))
    kind = field.message_type
    if kind is None:
        return value
    if kind.full_name == Timestamp.DESCRIPTOR.full_name:
        return None if value == "1970-01-01T00:00:00Z" else value
    if isinstance(value, dict) and kind.file.package.startswith("sluice."):
        return _fix_message(kind, value)
    return value


def print_json(document: object, out: TextIO | None = None) -> None:
    """The one JSON document of a list or show verb (on stdout unless `out` is given)."""
    print(json.dumps(document, indent=2, ensure_ascii=False), file=out or sys.stdout)


def print_messages(messages: Iterable[Message]) -> None:
    """A list verb's JSON document: its messages, in order."""
    print_json([message_document(m) for m in messages])
