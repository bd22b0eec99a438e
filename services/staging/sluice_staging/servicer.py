"""sluice.v1.StagingService: every call is scoped to the caller's workspace.

A batch of another workspace is simply not found. SluiceErrors raised here become gRPC statuses in
sluice.grpc_server; nothing else reaches a client.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import grpc
from nats.js import JetStreamContext

from sluice import storage, webhooks
from sluice.errors import FailedPrecondition, InvalidArgument, NotFound
from sluice.grpc_server import current_workspace
from sluice.ids import validate_id
from sluice.models.stored import MAX_MODEL_BYTES
from sluice.v1 import events_pb2, staging_pb2, staging_pb2_grpc
from sluice.webhooks import DeliveryPolicy
from sluice_staging import events, thumbnails
from sluice_staging.batches import (
    DEFAULT_PART_SIZE,
    DEFAULT_TTL,
    MAX_FILE_BYTES,
    MAX_VIDEO_BYTES,
    OUTPUT_TYPES,
    USER_TYPES,
    batch_ttl,
    expired_message,
    hold_length,
    require_live,
    require_same_type,
    type_name,
)
from sluice_staging.convert import batch_message, object_message
from sluice_staging.download import object_chunks
from sluice_staging.expiry import DEFAULT_SWEEP_S, Clock, utc_now
from sluice_staging.notifications import BatchEvents
from sluice_staging.repository import BatchRow, ObjectRow, Repository
from sluice_staging.upload import Uploader, content_type

log = logging.getLogger(__name__)

BATCHES_PAGE = (100, 1000)  # default and largest page of ListBatches
CONTENT_PAGE = (1000, 10000)  # default and largest page of ListBatchContent


@dataclass(frozen=True)
class StagingOptions:
    """How staging cuts and keeps batches, the largest files it takes, where videos being
    received are spooled (None: the system's temporary folder), how often expired batches are
    purged (0: never; tests call Expiry.sweep) and the clock that says when (tests move it)."""

    part_size: int = DEFAULT_PART_SIZE
    batch_ttl: timedelta = DEFAULT_TTL
    max_file_bytes: int = MAX_FILE_BYTES
    max_video_bytes: int = MAX_VIDEO_BYTES
    max_model_bytes: int = MAX_MODEL_BYTES
    spool_dir: Path | None = None
    expiry_sweep_s: float = DEFAULT_SWEEP_S
    clock: Clock = utc_now
    webhooks: DeliveryPolicy = field(default_factory=DeliveryPolicy)


def _page_size(requested: int, sizes: tuple[int, int]) -> int:
    default, largest = sizes
    return default if requested <= 0 else min(requested, largest)


def _batches_token(batch: BatchRow) -> str:
    raw = f"{batch.created_at.isoformat()}|{batch.batch_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _parse_batches_token(token: str) -> tuple[datetime, str] | None:
    if not token:
        return None
    try:
        created, batch_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), batch_id
    except (ValueError, binascii.Error) as error:
        raise InvalidArgument("invalid page_token: pass next_page_token unchanged") from error


class StagingServicer(staging_pb2_grpc.StagingServiceServicer):
    # Refused to API keys by sluice.grpc_server (PERMISSION_DENIED): for Sluice services only.
    internal_only = frozenset({"GetBatchLocation", "RegisterOutputBatch", "HoldBatch"})

    def __init__(
        self,
        repository: Repository,
        store: storage.ObjectStore,
        js: JetStreamContext,
        options: StagingOptions,
        batch_events: BatchEvents,
    ) -> None:
        self._repository = repository
        self._store = store
        self._js = js
        self._options = options
        self._events = batch_events

    async def _batch_message(self, batch: BatchRow) -> staging_pb2.Batch:
        parts = await self._repository.part_stats(batch.workspace, [batch.batch_id])
        return batch_message(batch, parts[batch.batch_id])

    async def _live_batch(self, batch_id: str) -> BatchRow:
        workspace = current_workspace()
        batch = await self._repository.get_batch(workspace, batch_id)
        return require_live(batch, batch_id, now=self._options.clock())

    async def CreateBatch(
        self, request: staging_pb2.CreateBatchRequest, context: grpc.aio.ServicerContext
    ) -> staging_pb2.Batch:
        batch_id = validate_id(request.batch_id)
        wanted = type_name(request.type, USER_TYPES)
        ttl = batch_ttl(request.ttl_seconds, self._options.batch_ttl)
        url = webhooks.validate_url(request.notifications_url) if request.notifications_url else ""
        now = self._options.clock()
        batch, created = await self._repository.create_batch(
            current_workspace(), batch_id, wanted, ttl, now=now, notifications_url=url
        )
        if not created:  # it keeps its expiry; an expired batch's id is never reused
            require_live(batch, batch_id, now=now)
            require_same_type(batch, wanted)
            if url and url != batch.notifications_url:  # given again: its next events go there
                batch = await self._repository.set_notifications_url(batch, url)
        else:
            await self._announce(
                events.batch_created(batch.workspace, batch_id, wanted), events.BATCH_CREATED
            )
        return await self._batch_message(batch)

    async def _announce(self, event: events_pb2.Event, kind: str) -> None:
        """Publish a batch's event (and queue its webhook); a lost event fails no call."""
        try:
            await self._events.publish(self._js, event, kind)
        except Exception:
            log.exception("could not publish %s for %s", kind, event.batch_id)

    async def UploadFiles(
        self,
        request_iterator: AsyncIterable[staging_pb2.UploadChunk],
        context: grpc.aio.ServicerContext,
    ) -> staging_pb2.UploadSummary:
        workspace = current_workspace()
        uploader = Uploader(
            self._repository,
            self._store,
            self._options.part_size,
            self._options.max_file_bytes,
            self._options.max_video_bytes,
            self._options.spool_dir,
            self._options.clock,
        )
        result = await uploader.receive(workspace, request_iterator)
        stored = result.summary.files_stored
        if stored:
            # the files are stored; a lost event must not fail the upload
            await self._announce(
                events.batch_ingested(workspace, result.batch_id, stored), events.BATCH_INGESTED
            )
        return result.summary

    async def ListBatches(
        self, request: staging_pb2.ListBatchesRequest, context: grpc.aio.ServicerContext
    ) -> staging_pb2.ListBatchesResponse:
        workspace = current_workspace()
        limit = _page_size(request.page_size, BATCHES_PAGE)
        after = _parse_batches_token(request.page_token)
        rows = await self._repository.list_batches(workspace, limit + 1, after)
        page = rows[:limit]
        parts = await self._repository.part_stats(workspace, [b.batch_id for b in page])
        return staging_pb2.ListBatchesResponse(
            batches=[batch_message(b, parts[b.batch_id]) for b in page],
            next_page_token=_batches_token(page[-1]) if len(rows) > limit else "",
        )

    async def GetBatch(
        self, request: staging_pb2.GetBatchRequest, context: grpc.aio.ServicerContext
    ) -> staging_pb2.Batch:
        """Expired batches too: they say when they expired (expired_at)."""
        batch = await self._repository.get_batch(current_workspace(), request.batch_id)
        if batch is None:
            raise NotFound(f"batch {request.batch_id!r} not found")
        return await self._batch_message(batch)

    async def ListBatchContent(
        self, request: staging_pb2.ListBatchContentRequest, context: grpc.aio.ServicerContext
    ) -> staging_pb2.ListBatchContentResponse:
        batch = await self._live_batch(request.batch_id)
        limit = _page_size(request.page_size, CONTENT_PAGE)
        part = None if request.all_parts or request.part_index < 0 else request.part_index
        rows = await self._repository.list_objects(
            batch.workspace,
            batch.batch_id,
            limit=limit + 1,
            after=request.page_token,
            part_index=part,
            prefix=request.name_prefix,
        )
        page = rows[:limit]
        return staging_pb2.ListBatchContentResponse(
            objects=[object_message(o) for o in page],
            next_page_token=page[-1].name if len(rows) > limit else "",
        )

    async def DownloadObjects(
        self, request: staging_pb2.DownloadObjectsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[staging_pb2.DownloadChunk]:
        batch = await self._live_batch(request.batch_id)
        url = self._store.batch_url(batch.workspace, batch.batch_id)
        async for obj in self._objects_to_download(batch, list(request.names)):
            async for chunk in object_chunks(url, obj.name):
                yield chunk

    async def _objects_to_download(self, batch: BatchRow, names: list[str]) -> AsyncIterator[ObjectRow]:
        """The named objects in the order asked (all checked first), or every object by name."""
        if names:
            found = await self._repository.find_objects(batch.workspace, batch.batch_id, names)
            missing = [n for n in names if n not in found]
            if missing:
                listed = ", ".join(repr(n) for n in missing[:5])
                more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
                raise NotFound(f"not in batch {batch.batch_id!r}: {listed}{more}")
            for name in names:
                yield found[name]
            return
        after = ""
        while True:
            page = await self._repository.list_objects(
                batch.workspace, batch.batch_id, limit=CONTENT_PAGE[0], after=after
            )
            for obj in page:
                yield obj
            if len(page) < CONTENT_PAGE[0]:
                return
            after = page[-1].name

    async def GetThumbnails(
        self, request: staging_pb2.GetThumbnailsRequest, context: grpc.aio.ServicerContext
    ) -> staging_pb2.GetThumbnailsResponse:
        """Previews of up to 100 objects; a name the batch lacks is that preview's error."""
        batch_id = validate_id(request.batch_id)
        names = list(request.names)
        thumbnails.check_names(names)
        max_side = thumbnails.preview_side(request.max_side)
        batch = await self._live_batch(batch_id)
        found = await self._repository.find_objects(batch.workspace, batch.batch_id, names) if names else {}
        url = self._store.batch_url(batch.workspace, batch.batch_id)
        return await thumbnails.thumbnails(url, names, found, max_side)

    async def RegisterOutputBatch(
        self, request: staging_pb2.RegisterOutputBatchRequest, context: grpc.aio.ServicerContext
    ) -> staging_pb2.Batch:
        workspace = current_workspace()
        batch_id = validate_id(request.batch_id)
        wanted = type_name(request.type, OUTPUT_TYPES)
        if request.source_job_id:
            validate_id(request.source_job_id, "job id")
        now = self._options.clock()
        batch, created = await self._repository.create_batch(
            workspace, batch_id, wanted, self._options.batch_ttl, request.source_job_id, now=now
        )
        if not created:  # written again (a restarted job): kept the installation's TTL from now
            require_live(batch, batch_id, now=now)
            require_same_type(batch, wanted)
            renewed = await self._repository.extend_expiry(workspace, batch_id, now + self._options.batch_ttl)
            batch = renewed or batch
        url = self._store.batch_url(workspace, batch_id)
        found = await asyncio.to_thread(storage.list_objects, url)
        objects = {name: (size, content_type(name)) for name, size in found.items()}
        if not await self._repository.sync_objects(workspace, batch_id, objects):
            raise FailedPrecondition(expired_message(batch))
        return await self._batch_message(batch)

    async def HoldBatch(
        self, request: staging_pb2.HoldBatchRequest, context: grpc.aio.ServicerContext
    ) -> staging_pb2.Batch:
        """held_until = max(held_until, now + hold_seconds) for a live batch (Sluice services
        only: sluice.grpc_server refuses API keys)."""
        workspace = current_workspace()
        batch_id = validate_id(request.batch_id)
        job_id = validate_id(request.job_id, "job id") if request.job_id else ""
        hold = hold_length(request.hold_seconds)
        now = self._options.clock()
        held = await self._repository.hold_batch(workspace, batch_id, job_id, now, now + hold)
        if held is None:
            batch = await self._repository.get_batch(workspace, batch_id)
            require_live(batch, batch_id, now=now)
            raise FailedPrecondition(f"batch {batch_id!r} cannot be held now; try again")
        return await self._batch_message(held)

    async def GetBatchLocation(
        self, request: staging_pb2.GetBatchRequest, context: grpc.aio.ServicerContext
    ) -> staging_pb2.BatchLocation:
        batch = await self._live_batch(request.batch_id)
        return staging_pb2.BatchLocation(
            batch_id=batch.batch_id, url=self._store.batch_url(batch.workspace, batch.batch_id)
        )
