"""The batch page (`batch?batch_id=X`): the batch's facts, then its content one page of 24 at a
time from staging, as thumbnails (images scaled down, first frames of videos) or as a table.

Only the page on screen is listed and previewed, so a 100,000-image batch opens as fast as a
small one; previews are cached per workspace, batch and page of names for ten minutes.
"""

from __future__ import annotations

from typing import Any

import grpc
import pandas as pd
import streamlit as st

from sluice.cli.output import human_bytes, when
from sluice.cli.staging_commands import BATCH_TYPES, duration_text, expiry_text, fps_text, is_expired
from sluice.errors import SluiceError
from sluice.ids import ID_RULE, validate_id
from sluice.v1 import common_pb2, staging_pb2
from sluice_dashboard import session, ui
from sluice_dashboard.client import STAGING, ServiceError, Services
from sluice_dashboard.previews import previews

PAGE_SIZE = 24
COLUMNS = 6
THUMB_SIDE = 240
MEDIA_TYPES = {common_pb2.BATCH_TYPE_IMAGES, common_pb2.BATCH_TYPE_VIDEOS}

"""(name, JPEG bytes or empty, why there is no preview)."""


def _facts(batch: staging_pb2.Batch) -> None:
    first = st.columns(4)
    first[0].metric("Type", BATCH_TYPES.get(batch.type, "?"))
    first[1].metric("Files", f"{batch.object_count:,}")
    first[2].metric("Size", human_bytes(batch.total_bytes))
    first[3].metric("Parts", batch.part_count)
    second = st.columns(3)
    second[0].metric("Created", when(batch.created_at))
    second[1].metric("Expired" if is_expired(batch) else "Expires", expiry_text(batch))
    second[2].metric("Source job", batch.source_job_id or "-")
    if batch.source_job_id:
        ui.page_link("job", f"Open job {batch.source_job_id}", job_id=batch.source_job_id)


def content_rows(objects: list[staging_pb2.BatchObject], videos: bool) -> pd.DataFrame:
    """The table view: one row per object; videos add what staging probed."""
    rows: list[dict[str, Any]] = []
    for o in objects:
        row: dict[str, Any] = {
            "Name": o.name,
            "Size": human_bytes(o.size_bytes),
            "Part": o.part_index,
            "Content type": o.content_type or "-",
        }
        if videos:
            v = o.video if o.HasField("video") else None
            row["Duration"] = duration_text(v.duration_s) if v else "-"
            row["Frames"] = v.frame_count if v else "-"
            row["FPS"] = fps_text(v) if v else "-"
            row["Codec"] = (v.codec or "-") if v else "-"
            row["Resolution"] = f"{v.width}x{v.height}" if v else "-"
        rows.append(row)
    return pd.DataFrame(rows)


def _grid(svc: Services, batch_id: str, objects: list[staging_pb2.BatchObject]) -> None:
    names = tuple(o.name for o in objects)
    workspace = str(st.session_state.get(session.WORKSPACE, ""))
    try:
        thumbs = {
            name: (jpeg, why) for name, jpeg, why in previews(svc, workspace, batch_id, names, THUMB_SIDE)
        }
    except ServiceError as error:
        if error.down:
            ui.show_error(error)
            return
        if error.code != grpc.StatusCode.UNIMPLEMENTED:
            st.warning(ui.plain(f"No previews: {error}"))
        else:
            st.caption("This staging service makes no previews; the names are listed instead.")
        thumbs = {}
    sizes = {o.name: o.size_bytes for o in objects}
    for start in range(0, len(names), COLUMNS):
        cells = st.columns(COLUMNS)
        for cell, name in zip(cells, names[start : start + COLUMNS], strict=False):
            with cell:
                jpeg, why = thumbs.get(name, (b"", ""))
                if jpeg:
                    st.image(jpeg, caption=name)
                else:
                    st.text(name)
                    if why:
                        st.caption(ui.plain(f"no preview: {why}"))
                st.caption(human_bytes(sizes[name]))


def _content(svc: Services, batch: staging_pb2.Batch) -> None:
    st.subheader("Content")
    media = batch.type in MEDIA_TYPES
    view = st.radio(
        "View", ["Thumbnails", "Table"] if media else ["Table"], key="batch_view", horizontal=True
    )
    pager = ui.Pager(f"batch_pager_{batch.batch_id}")
    try:
        page = svc.call(
            STAGING,
            "ListBatchContent",
            staging_pb2.ListBatchContentRequest(
                batch_id=batch.batch_id, page_size=PAGE_SIZE, page_token=pager.token, all_parts=True
            ),
        )
    except ServiceError as error:
        ui.show_error(error)
        return
    objects = list(page.objects)
    if not objects:
        st.info("This batch holds no files yet.")
        return
    if view == "Thumbnails":
        _grid(svc, batch.batch_id, objects)
    else:
        videos = batch.type == common_pb2.BATCH_TYPE_VIDEOS
        st.dataframe(content_rows(objects, videos), hide_index=True, key="batch_content_table")
    pager.controls(page.next_page_token)


def render() -> None:
    svc = session.require_services()
    raw = str(st.query_params.get("batch_id", "")).strip()
    if not raw:
        st.title("Batch")
        st.info("No batch chosen: open one from the Batches page.")
        ui.page_link("batches", "Batches")
        return
    try:
        batch_id = validate_id(raw, "batch id")
    except SluiceError:
        st.title("Batch")
        st.error(f"That is not a batch id (batch ids are {ID_RULE}):")
        st.text(raw)
        return
    st.title(f"Batch {batch_id}")
    try:
        batch = svc.call(STAGING, "GetBatch", staging_pb2.GetBatchRequest(batch_id=batch_id))
    except ServiceError as error:
        if error.code == grpc.StatusCode.NOT_FOUND:
            st.error(f"There is no batch `{batch_id}` in this workspace.")
            ui.page_link("batches", "Batches")
        else:
            ui.show_error(error)
        return
    _facts(batch)
    if batch.HasField("expired_at"):
        st.warning(f"This batch expired on {when(batch.expired_at)}: its files were deleted.")
        return
    _content(svc, batch)
