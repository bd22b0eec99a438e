"""`sluice data-staging ...`: the verbs of the hosted service's data staging CLI."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf.timestamp_pb2 import Timestamp

from sluice.cli.commands import command_help
from sluice.cli.context import connection
from sluice.cli.output import (
    BATCH_TYPES,
    add_output_option,
    fields,
    human_bytes,
    message_document,
    print_json,
    print_messages,
    table,
    wants_json,
    when,
)
from sluice.errors import InvalidArgument
from sluice.ids import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    is_image_name,
    is_reserved_name,
    is_video_name,
    validate_id,
)
from sluice.upload_streams import MAX_UPLOAD_STREAMS, UPLOAD_STREAMS
from sluice.v1 import common_pb2, staging_pb2
from sluice.webhook_urls import display_url, validate_url

if TYPE_CHECKING:
    from sluice.v1 import staging_pb2_grpc


@dataclass(frozen=True)
class _Media:
    """What a kind of batch takes: its type, and which files are of its kind."""

    noun: str
    article: str
    batch_type: common_pb2.BatchType
    accepts: Callable[[str], bool]
    extensions: frozenset[str]


_IMAGES = _Media("image", "an", common_pb2.BATCH_TYPE_IMAGES, is_image_name, IMAGE_EXTENSIONS)
_VIDEOS = _Media("video", "a", common_pb2.BATCH_TYPE_VIDEOS, is_video_name, VIDEO_EXTENSIONS)


def create_batch_of_images(args: argparse.Namespace) -> int:
    return _create_batch(args, args.images_dir, _IMAGES)


def create_batch_of_videos(args: argparse.Namespace) -> int:
    return _create_batch(args, args.videos_dir, _VIDEOS)


def _create_batch(args: argparse.Namespace, folder: Path, media: _Media) -> int:
    """Upload what of `folder` the batch lacks; files it does not take are named, not sent."""
    from sluice.cli.upload import local_files, plan_upload, upload  # progress bars: uploads only

    batch_id = validate_id(args.batch_id, "batch id")
    noun = media.noun
    if not folder.is_dir():
        raise InvalidArgument(f"{noun}s folder {folder} does not exist or is not a folder")
    files = local_files(folder)
    if not any(media.accepts(name) and not is_reserved_name(name) for name, _ in files):
        kinds = "/".join(sorted(media.extensions))
        found = f"; none of its {len(files)} files is a {kinds} {noun}" if files else ""
        raise InvalidArgument(f"no {noun}s in {folder} (nothing to upload{found})")
    conn = connection(args)
    stub = conn.staging()
    ttl_seconds = args.expire_after_days * 86400.0 if args.expire_after_days else 0.0
    url = validate_url(args.notifications_url) if args.notifications_url else ""
    stub.CreateBatch(
        staging_pb2.CreateBatchRequest(
            batch_id=batch_id, type=media.batch_type, ttl_seconds=ttl_seconds, notifications_url=url
        ),
        metadata=conn.metadata,
    )
    staged = {o.name: o.size_bytes for o in _staged_objects(stub, conn.metadata, batch_id)}
    plan = plan_upload(files, staged, media.accepts)
    for name in plan.not_accepted:
        print(f"skipped (not {media.article} {noun}): {name}")
    for name in plan.reserved:
        print(f"skipped (reserved: '.sluice/' holds Sluice's own files): {name}")
    stored, rejected = upload(stub, conn.metadata, batch_id, plan.to_upload, args.upload_streams)
    for item in rejected:
        print(f"rejected: {item.file_name}: {item.reason}")
    batch = stub.GetBatch(staging_pb2.GetBatchRequest(batch_id=batch_id), metadata=conn.metadata)
    skipped = len(plan.not_accepted) + len(plan.reserved) + len(rejected)
    print(
        f"batch {batch_id}: {stored} uploaded, {plan.already_staged} already staged, {skipped} skipped; "
        f"{batch.object_count} {noun}{'' if batch.object_count == 1 else 's'} "
        f"({human_bytes(batch.total_bytes)}) in {batch.part_count} part(s)"
    )
    return 0


def _days(value: str) -> float:
    """--expire-after-days: a positive number of days (fractions allowed)."""
    try:
        days = float(value)
    except ValueError:
        days = -1.0
    if not math.isfinite(days) or days <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of days, not {value!r}")
    return days


def _held_past_expiry(batch: staging_pb2.Batch) -> bool:
    return batch.HasField("held_until") and batch.held_until.ToDatetime() > batch.expires_at.ToDatetime()


def _lapses(batch: staging_pb2.Batch) -> Timestamp:
    """When the batch stops being usable: its expiry, or a job's hold on it when later."""
    return batch.held_until if _held_past_expiry(batch) else batch.expires_at


def is_expired(batch: staging_pb2.Batch) -> bool:
    return batch.HasField("expired_at") or _lapses(batch).ToDatetime(tzinfo=UTC) <= datetime.now(UTC)


def expiry_text(batch: staging_pb2.Batch) -> str:
    """When the batch expires, or when it expired; a job's hold past its expiry is said too."""
    if is_expired(batch):
        return f"expired on {when(_lapses(batch))}"
    if _held_past_expiry(batch):
        return f"{when(batch.expires_at)} (held by a job until {when(batch.held_until)})"
    return when(batch.expires_at)


def duration_text(seconds: float) -> str:
    """`M:SS.ss`, or `H:MM:SS.ss` from an hour."""
    minutes, secs = divmod(max(seconds, 0.0), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    if secs >= 59.995:  # would print as 60.00
        secs, minutes = 0.0, minutes + 1
        if minutes == 60:
            minutes, hours = 0, hours + 1
    return f"{hours}:{minutes:02d}:{secs:05.2f}" if hours else f"{minutes}:{secs:05.2f}"


def fps_text(video: common_pb2.VideoInfo) -> str:
    text = f"{video.fps:.3f}".rstrip("0").rstrip(".")
    return f"{text} (vfr)" if video.variable_frame_rate else text


def _video_row(o: staging_pb2.BatchObject) -> tuple[object, ...]:
    if not o.HasField("video"):
        return (o.name, o.size_bytes, o.part_index, "-", "-", "-", "-", "-", "-")
    v = o.video
    return (
        o.name,
        o.size_bytes,
        o.part_index,
        duration_text(v.duration_s),
        v.frame_count,
        f"{v.width}x{v.height}",
        fps_text(v),
        v.codec or "-",
        v.rotation,
    )


VIDEO_COLUMNS = ("NAME", "BYTES", "PART", "DURATION", "FRAMES", "SIZE", "FPS", "CODEC", "ROTATION")


def _staged_objects(
    stub: staging_pb2_grpc.StagingServiceStub, metadata: Sequence[tuple[str, str]], batch_id: str
) -> list[staging_pb2.BatchObject]:
    from sluice.cli.upload import staged_objects  # progress bars: imported by the verbs that list

    return staged_objects(stub, metadata, batch_id)


def list_batches(args: argparse.Namespace) -> int:
    conn = connection(args)
    stub = conn.staging()
    batches: list[staging_pb2.Batch] = []
    token = ""
    while True:
        page = stub.ListBatches(
            staging_pb2.ListBatchesRequest(page_size=500, page_token=token), metadata=conn.metadata
        )
        batches.extend(page.batches)
        token = page.next_page_token
        if not token:
            break
    if wants_json(args):
        print_messages(batches)
        return 0
    rows = [
        (
            b.batch_id,
            BATCH_TYPES.get(b.type, "?"),
            b.object_count,
            human_bytes(b.total_bytes),
            when(b.created_at),
            expiry_text(b),
        )
        for b in batches
    ]
    if not rows:
        print("no batches")
        return 0
    print(table(["BATCH", "TYPE", "OBJECTS", "SIZE", "CREATED", "EXPIRES"], rows))
    return 0


def show_batch_details(args: argparse.Namespace) -> int:
    conn = connection(args)
    stub = conn.staging()
    batch = stub.GetBatch(
        staging_pb2.GetBatchRequest(batch_id=validate_id(args.batch_id, "batch id")),
        metadata=conn.metadata,
    )
    if wants_json(args):
        print_json(message_document(batch))
        return 0
    video_totals: list[tuple[str, object]] = []
    if batch.type == common_pb2.BATCH_TYPE_VIDEOS and not is_expired(batch):
        videos = [
            o.video for o in _staged_objects(stub, conn.metadata, batch.batch_id) if o.HasField("video")
        ]
        video_totals = [
            ("duration", duration_text(sum(v.duration_s for v in videos))),
            ("frames", sum(v.frame_count for v in videos)),
        ]
    print(
        fields(
            [
                ("batch id", batch.batch_id),
                ("type", BATCH_TYPES.get(batch.type, "?")),
                ("objects", batch.object_count),
                ("size", human_bytes(batch.total_bytes)),
                ("parts", batch.part_count),
                *video_totals,
                ("created", when(batch.created_at)),
                ("expires", expiry_text(batch)),
                *([("source job", batch.source_job_id)] if batch.source_job_id else []),
                *(
                    [("notifications", display_url(batch.notifications_url))]
                    if batch.notifications_url
                    else []
                ),
            ]
        )
    )
    if batch.parts:
        print()
        print(
            table(
                ["PART", "OBJECTS", "SIZE"],
                [(p.index, p.object_count, human_bytes(p.total_bytes)) for p in batch.parts],
            )
        )
    return 0


def list_batch_content(args: argparse.Namespace) -> int:
    conn = connection(args)
    stub = conn.staging()
    batch_id = validate_id(args.batch_id, "batch id")
    batch = stub.GetBatch(staging_pb2.GetBatchRequest(batch_id=batch_id), metadata=conn.metadata)
    objects = _staged_objects(stub, conn.metadata, batch_id)
    if args.limit:
        objects = objects[: args.limit]
    if wants_json(args):
        return _print_content_documents(objects, args.output_file)
    if objects and batch.type == common_pb2.BATCH_TYPE_VIDEOS:
        lines = table(VIDEO_COLUMNS, [_video_row(o) for o in objects]).split("\n")
    else:
        lines = [f"{o.name}\t{o.size_bytes}\tpart {o.part_index}" for o in objects]
    if args.output_file:
        Path(args.output_file).write_text("\n".join(lines) + ("\n" if lines else ""))
        print(f"{len(objects)} objects written to {args.output_file}")
    else:
        print("\n".join(lines) if lines else "the batch is empty")
    return 0


def _print_content_documents(objects: list[staging_pb2.BatchObject], output_file: str | None) -> int:
    """`list-batch-content --output json`: the objects as one JSON list, on stdout or in the file."""
    documents = [message_document(o) for o in objects]
    if not output_file:
        print_json(documents)
        return 0
    with Path(output_file).open("w", encoding="utf-8") as handle:
        print_json(documents, handle)
    print(f"{len(objects)} objects written to {output_file}", file=sys.stderr)  # stdout stays JSON
    return 0


def export_batch(args: argparse.Namespace) -> int:
    from sluice.cli.download import download, local_path, unpack_archives  # progress bars, tarfile

    batch_id = validate_id(args.batch_id, "batch id")
    target: Path = args.target_dir
    target.mkdir(parents=True, exist_ok=True)
    conn = connection(args)
    stub = conn.staging()
    objects = _staged_objects(stub, conn.metadata, batch_id)
    missing = [
        o
        for o in objects
        if args.override_existing
        or not local_path(target, o.name).exists()
        or local_path(target, o.name).stat().st_size != o.size_bytes
    ]
    fetched = download(stub, conn.metadata, batch_id, missing, target)
    unpacked = unpack_archives(target)
    print(
        f"batch {batch_id} exported to {target}: {fetched} downloaded, "
        f"{len(objects) - len(missing)} already there, {len(unpacked)} archive(s) unpacked"
    )
    return 0


def _streams(value: str) -> int:
    """--upload-streams: a whole number from 1 to MAX_UPLOAD_STREAMS."""
    try:
        streams = int(value)
    except ValueError:
        streams = 0
    if not 1 <= streams <= MAX_UPLOAD_STREAMS:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 1 to {MAX_UPLOAD_STREAMS}, not {value!r}"
        )
    return streams


def _add_batch_options(p: argparse.ArgumentParser) -> None:
    """What a new batch may be given: its lifetime and where its events are posted; and how
    many streams the upload uses."""
    p.add_argument(
        "--upload-streams",
        type=_streams,
        default=UPLOAD_STREAMS,
        metavar="N",
        help=f"upload over this many streams at once (default {UPLOAD_STREAMS}; 1 sends one at a time)",
    )
    p.add_argument(
        "--expire-after-days",
        type=_days,
        help="delete the batch this many days after it is created (default: the installation's, 7)",
    )
    p.add_argument(
        "--notifications-url",
        metavar="URL",
        help="POST each of the batch's events here as signed JSON (docs/webhooks.md)",
    )


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("data-staging", help=command_help("data-staging")).add_subparsers(
        dest="verb", required=True, metavar="VERB"
    )
    p = group.add_parser(
        "create-batch-of-images", parents=parents, help="upload a folder of images into a batch (resumable)"
    )
    p.add_argument("--images-dir", "-i", type=Path, required=True, help="folder of images (recursive)")
    p.add_argument("--batch-id", "-b", required=True, help="lower case letters, digits, '-' and '_'")
    _add_batch_options(p)
    p.set_defaults(func=create_batch_of_images)

    p = group.add_parser(
        "create-batch-of-videos", parents=parents, help="upload a folder of videos into a batch (resumable)"
    )
    p.add_argument("--videos-dir", "-v", type=Path, required=True, help="folder of videos (recursive)")
    p.add_argument("--batch-id", "-b", required=True, help="lower case letters, digits, '-' and '_'")
    _add_batch_options(p)
    p.set_defaults(func=create_batch_of_videos)

    p = group.add_parser("list-batches", parents=parents, help="list the workspace's batches")
    add_output_option(p)
    p.set_defaults(func=list_batches)

    p = group.add_parser("show-batch-details", parents=parents, help="show one batch")
    p.add_argument("--batch-id", "-b", required=True)
    add_output_option(p)
    p.set_defaults(func=show_batch_details)

    p = group.add_parser("list-batch-content", parents=parents, help="list a batch's objects")
    p.add_argument("--batch-id", "-b", required=True)
    p.add_argument("--limit", "-l", type=int, default=0, help="show at most this many")
    p.add_argument("--output-file", "-o", help="write the listing to this file")
    add_output_option(p)
    p.set_defaults(func=list_batch_content)

    p = group.add_parser(
        "export-batch",
        parents=parents,
        help="download a batch to a folder (resumable) and unpack its archives",
    )
    p.add_argument("--batch-id", "-b", required=True)
    p.add_argument("--target-dir", "-t", type=Path, required=True)
    p.add_argument("--override-existing", action="store_true", help="download files already there")
    p.set_defaults(func=export_batch)
