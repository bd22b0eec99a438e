"""The jobs page: the workspace's jobs, newest first, one server-side page of 50 at a time, filtered
by state on the server. Only the table refreshes (a fragment, about once a second) and only while
a listed job is queued or running, so a page of ended jobs costs nothing after it is drawn."""

from __future__ import annotations

from urllib.parse import quote

import pandas as pd
import streamlit as st

from sluice.job_states import JOB_STATES
from sluice.v1 import scheduler_pb2
from sluice_dashboard import job_figures, session, ui
from sluice_dashboard.client import SCHEDULER, ServiceError, Services

PAGE_SIZE = 50
REFRESH_S = 1.0
STATE_KEY = "jobs_state"
LIVE_KEY = "_jobs_live"  # whether the last fetched page had an active job
PAGER_KEY = "jobs_pager"
STATE_VALUES: dict[str, scheduler_pb2.JobState] = {label: value for value, label in JOB_STATES.items()}


def job_url(job_id: str) -> str:
    return f"job?job_id={quote(job_id)}"


def rows(jobs: list[scheduler_pb2.Job]) -> pd.DataFrame:
    """The table's rows: one per job, the columns the page shows."""
    records = []
    for job in jobs:
        figures = job_figures.figures(job)
        records.append(
            {
                "Job": job_url(job.job_id),
                "State": figures.state,
                "Progress": figures.fraction,
                "Items": figures.items,
                "Failed": figures.items_failed,
                "Throughput": figures.throughput,
                "ETA": job_figures.duration(figures.eta_s),
                "Machine": figures.machine,
                "Credits": figures.credits,
                "Created": figures.created,
            }
        )
    return pd.DataFrame.from_records(
        records,
        columns=[
            "Job",
            "State",
            "Progress",
            "Items",
            "Failed",
            "Throughput",
            "ETA",
            "Machine",
            "Credits",
            "Created",
        ],
    )


COLUMNS = {
    "Job": st.column_config.LinkColumn("Job", display_text=r"job\?job_id=(.*)", help="open the job's page"),
    "Progress": st.column_config.ProgressColumn("Progress", min_value=0.0, max_value=1.0, format="percent"),
    "Failed": st.column_config.NumberColumn("Failed", help="items that failed"),
    "Throughput": st.column_config.NumberColumn("Throughput", format="%.2f items/s"),
    "Credits": st.column_config.NumberColumn("Credits", format="%.4f"),
}


def _states_filter(pager: ui.Pager) -> list[scheduler_pb2.JobState]:
    """The state filter; a change starts the list again at its first page."""
    chosen = st.multiselect(
        "State",
        list(STATE_VALUES),
        key=STATE_KEY,
        placeholder="all states",
        help="show only jobs in these states",
    )
    previous = st.session_state.get("_jobs_state_shown")
    if previous is not None and previous != chosen:
        pager.reset()
    st.session_state["_jobs_state_shown"] = list(chosen)
    return [STATE_VALUES[label] for label in chosen]


def _table(svc: Services, states: list[scheduler_pb2.JobState], pager: ui.Pager) -> None:
    """One page of jobs; asks the page to switch refreshing on or off when that changes."""
    request = scheduler_pb2.ListJobsRequest(page_size=PAGE_SIZE, page_token=pager.token, states=states)
    try:
        found = svc.call(SCHEDULER, "ListJobs", request)
    except ServiceError as error:
        ui.show_error(error)
        return
    jobs = list(found.jobs)
    live = any(job_figures.is_active(job) for job in jobs)
    if live != st.session_state.get(LIVE_KEY, False):
        st.session_state[LIVE_KEY] = live
        st.rerun(scope="app")  # draw the fragment again with (or without) its timer
    if not jobs:
        if states or pager.index:
            st.info("No jobs on this page in the chosen states.")
        else:
            st.info("No jobs yet. Start one on the New job page.")
            ui.page_link("new_job", "New job")
    else:
        st.dataframe(rows(jobs), column_config=COLUMNS, hide_index=True)
    pager.controls(found.next_page_token)


def render() -> None:
    svc = session.require_services()
    st.title("Jobs")
    pager = ui.Pager(PAGER_KEY)
    states = _states_filter(pager)
    refresh = REFRESH_S if st.session_state.get(LIVE_KEY, False) else None
    st.fragment(_table, run_every=refresh)(svc, states, pager)
