"""Rows of the staging schema as the messages of sluice.v1."""

from __future__ import annotations

from collections.abc import Sequence

from sluice.v1 import staging_pb2
from sluice_staging.batches import TYPE_VALUES
from sluice_staging.repository import BatchRow, ObjectRow, PartStats


def batch_message(batch: BatchRow, parts: Sequence[PartStats]) -> staging_pb2.Batch:
    message = staging_pb2.Batch(
        batch_id=batch.batch_id,
        type=TYPE_VALUES[batch.type],
        object_count=sum(p.object_count for p in parts),
        total_bytes=sum(p.total_bytes for p in parts),
        part_count=len(parts),
        source_job_id=batch.source_job_id,
        notifications_url=batch.notifications_url,
        parts=[
            staging_pb2.BatchPart(index=p.index, object_count=p.object_count, total_bytes=p.total_bytes)
            for p in parts
        ],
    )
    message.created_at.FromDatetime(batch.created_at)
    message.expires_at.FromDatetime(batch.expires_at)
    if batch.expired_at is not None:
        message.expired_at.FromDatetime(batch.expired_at)
    if batch.held_until is not None:
        message.held_until.FromDatetime(batch.held_until)
    return message


def object_message(obj: ObjectRow) -> staging_pb2.BatchObject:
    message = staging_pb2.BatchObject(
        name=obj.name,
        size_bytes=obj.size_bytes,
        part_index=obj.part_index,
        content_type=obj.content_type,
    )
    if obj.video is not None:
        message.video.ParseFromString(obj.video)
    return message
