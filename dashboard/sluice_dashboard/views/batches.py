"""The batches page: the workspace's batches, a page of 50 at a time from staging, and uploading
a folder from the browser into a batch (resumable: only what the batch lacks is sent)."""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from sluice.cli.output import human_bytes, when
from sluice.cli.staging_commands import BATCH_TYPES, expiry_text
from sluice.errors import SluiceError
from sluice.ids import ID_RULE
from sluice.v1 import staging_pb2
from sluice_dashboard import browser_upload, session, ui
from sluice_dashboard.__main__ import MAX_UPLOAD_MB
from sluice_dashboard.client import STAGING, ServiceError, Services

PAGE_SIZE = 50
UPLOAD_HELP = (
    f"Pick a folder of images or videos (subfolders too); at most {MAX_UPLOAD_MB} MB per upload. "
    "This suits small and moderate amounts: large amounts belong to "
    "`sluice data-staging create-batch-of-images` (or `create-batch-of-videos`), "
    "which streams from disk and resumes the same way."
)


def batch_rows(batches: list[staging_pb2.Batch]) -> pd.DataFrame:
    """One row per batch; the Batch column is a link to its page."""
    rows: list[dict[str, Any]] = [
        {
            "Batch": f"batch?batch_id={b.batch_id}",
            "Type": BATCH_TYPES.get(b.type, "?"),
            "Files": b.object_count,
            "Size": human_bytes(b.total_bytes),
            "Parts": b.part_count,
            "Created": when(b.created_at),
            "Expires": expiry_text(b),
            "Source job": b.source_job_id or "-",
        }
        for b in batches
    ]
    return pd.DataFrame(rows)


def _table(svc: Services) -> None:
    pager = ui.Pager("batches_pager")
    try:
        found = svc.call(
            STAGING,
            "ListBatches",
            staging_pb2.ListBatchesRequest(page_size=PAGE_SIZE, page_token=pager.token),
        )
    except ServiceError as error:
        ui.show_error(error)
        return
    if not found.batches and pager.index == 0:
        st.info("No batches yet: upload a folder below, or use `sluice data-staging create-batch-of-images`.")
        return
    st.dataframe(
        batch_rows(list(found.batches)),
        hide_index=True,
        column_config={"Batch": st.column_config.LinkColumn("Batch", display_text=r"batch\?batch_id=(.*)")},
        key="batches_table",
    )
    pager.controls(found.next_page_token)


def _progress_bar(bar: DeltaGenerator) -> browser_upload.Progress:
    """The upload's progress callback: it runs in gRPC's thread that reads the request stream,
    so it takes this script run's context first (else Streamlit refuses the update), and
    redraws only when the percentage moves."""
    ctx = get_script_run_ctx()
    shown = [-1]

    def progress(done: int, total: int) -> None:
        percent = min(100, done * 100 // total) if total else 100
        if percent == shown[0]:
            return
        shown[0] = percent
        if get_script_run_ctx(suppress_warning=True) is None and ctx is not None:
            add_script_run_ctx(threading.current_thread(), ctx)
        bar.progress(percent / 100, text=f"uploading: {human_bytes(done)} of {human_bytes(total)}")

    return progress


def _upload(svc: Services) -> None:
    st.subheader("Upload a folder")
    batch_id = st.text_input(
        "Batch id", key="upload_batch_id", help=f"A new or existing batch: {ID_RULE}", placeholder="my-photos"
    )
    batch_error = st.empty()
    kind = st.radio("Kind", ["images", "videos"], key="upload_kind", horizontal=True)
    files = st.file_uploader(
        "Files to upload", accept_multiple_files="directory", key="upload_files", help=UPLOAD_HELP
    )
    files_error = st.empty()
    if not st.button("Upload", key="upload_go", type="primary"):
        return
    if not files:
        files_error.error("Pick a folder to upload first.")
        return
    bar = st.progress(0.0, text="uploading...")
    progress = _progress_bar(bar)
    try:
        report = browser_upload.upload_folder(svc, batch_id or "", str(kind), files, progress)
    except SluiceError as error:
        bar.empty()
        batch_error.error(error.message)
        return
    except ServiceError as error:
        bar.empty()
        if error.down:
            ui.show_error(error)
        else:
            batch_error.error(str(error))
        return
    bar.empty()
    st.success(ui.plain(f"Batch {batch_id.strip()}: {report.line()}."))
    if report.refused:
        st.warning("Some files were refused:")
        st.dataframe(
            pd.DataFrame(report.refused, columns=["File", "Reason"]), hide_index=True, key="upload_refused"
        )
    ui.page_link("batch", f"Open batch {batch_id.strip()}", batch_id=batch_id.strip())


def render() -> None:
    svc = session.require_services()
    st.title("Batches")
    table = st.container()
    _upload(svc)
    with table:
        _table(svc)
