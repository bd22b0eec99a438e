"""The usage page: machine time and credits of the workspace over a period of UTC days, by day
and by job, as the scheduler accounts them (GetUsage; the same figures as `sluice usage`).

Days are the days jobs were created on, as in the CLI: `until` is included, so the request's
upper bound is the next day's midnight.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st
from google.protobuf.timestamp_pb2 import Timestamp

from sluice.v1 import scheduler_pb2
from sluice_dashboard import session, ui
from sluice_dashboard.client import SCHEDULER, ServiceError, Services

DEFAULT_DAYS = 30
TOP_JOBS = 50
USAGE_TIMEOUT_S = 10.0


def _midnight(day: date) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime(day.year, day.month, day.day, tzinfo=UTC))
    return ts


def usage_request(since: date, until: date, by: scheduler_pb2.UsageGrouping) -> scheduler_pb2.GetUsageRequest:
    """Jobs created from `since` through `until` (UTC days, both included)."""
    request = scheduler_pb2.GetUsageRequest(by=by)
    request.since.CopyFrom(_midnight(since))
    request.until.CopyFrom(_midnight(until + timedelta(days=1)))
    return request


def hours(seconds: float) -> float:
    return seconds / 3600


def day_frame(rows: Any) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Day": row.key,
                "Jobs": row.jobs,
                "Credits": row.usage.credits,
                "CPU hours": hours(row.usage.cpu_seconds),
                "GPU hours": hours(row.usage.gpu_seconds),
            }
            for row in rows
        ]
    )


def job_frame(rows: Any) -> pd.DataFrame:
    """The TOP_JOBS jobs that cost the most, most first."""
    top = sorted(rows, key=lambda row: (-row.usage.credits, -row.usage.cpu_seconds, row.key))[:TOP_JOBS]
    return pd.DataFrame(
        [
            {
                "Job": f"job?job_id={row.key}",
                "CPU hours": hours(row.usage.cpu_seconds),
                "GPU hours": hours(row.usage.gpu_seconds),
                "Credits": row.usage.credits,
            }
            for row in top
        ]
    )


def _period() -> tuple[date, date] | None:
    today = datetime.now(UTC).date()
    since_column, until_column = st.columns(2)
    since = since_column.date_input("Since", today - timedelta(days=DEFAULT_DAYS), key="usage_since")
    until = until_column.date_input("Until", today, key="usage_until", help="Included (UTC days).")
    if not isinstance(since, date) or not isinstance(until, date):
        st.error("Pick both days.")
        return None
    if since > until:
        until_column.error(f"Until ({until.isoformat()}) is before Since ({since.isoformat()}).")
        return None
    return since, until


def _fetch(svc: Services, since: date, until: date, by: scheduler_pb2.UsageGrouping) -> Any:
    return svc.call(SCHEDULER, "GetUsage", usage_request(since, until, by), timeout_s=USAGE_TIMEOUT_S)


def render() -> None:
    svc = session.require_services()
    st.title("Usage")
    st.caption("Machine time and credits of the jobs created in the period (UTC days).")
    period = _period()
    if period is None:
        return
    try:
        by_day = _fetch(svc, *period, scheduler_pb2.USAGE_GROUPING_DAY)
        by_job = _fetch(svc, *period, scheduler_pb2.USAGE_GROUPING_JOB)
    except ServiceError as error:
        ui.show_error(error)
        return
    if not by_job.rows:
        st.info("No jobs in this period, so no usage to show.")
        return
    total = by_job.total
    jobs, cpu, gpu, credits = st.columns(4)
    jobs.metric("Jobs", len(by_job.rows))
    cpu.metric("CPU hours", f"{hours(total.cpu_seconds):.4f}")
    gpu.metric("GPU hours", f"{hours(total.gpu_seconds):.4f}")
    credits.metric("Credits", f"{total.credits:.4f}")
    _by_day(day_frame(by_day.rows))
    _by_job(job_frame(by_job.rows), len(by_job.rows))


def _by_day(frame: pd.DataFrame) -> None:
    st.subheader("By day")
    if frame.empty:
        st.info("No days with jobs in this period.")
        return
    credits, machine = st.columns(2)
    with credits:
        st.caption("Credits per day")
        st.bar_chart(frame, x="Day", y="Credits")
    with machine:
        st.caption("Machine time per day (hours)")
        st.bar_chart(frame, x="Day", y=["CPU hours", "GPU hours"])


def _by_job(frame: pd.DataFrame, count: int) -> None:
    st.subheader("By job")
    if count > TOP_JOBS:
        st.caption(f"The {TOP_JOBS} jobs that cost the most, of {count}.")
    st.dataframe(
        frame,
        hide_index=True,
        key="usage_jobs",
        column_config={
            "Job": st.column_config.LinkColumn("Job", display_text=r"job\?job_id=(.*)"),
            "CPU hours": st.column_config.NumberColumn(format="%.4f"),
            "GPU hours": st.column_config.NumberColumn(format="%.4f"),
            "Credits": st.column_config.NumberColumn(format="%.4f"),
        },
    )
    chart = frame.assign(Job=frame["Job"].str.removeprefix("job?job_id="))
    st.caption("Credits per job")
    st.bar_chart(chart, x="Job", y="Credits", horizontal=True)
