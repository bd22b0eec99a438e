"""The job page (`job?job_id=X`): one job's state, progress and controls, and tabs for its stages,
tasks, errors, logs, outputs and annotated images.

Only fragments refresh while the job is queued or running: the live header once a second, the
progress chart and tasks every two seconds; once the job has ended they stop (a fragment that sees
the end reruns the page once, which draws them without timers). Slow, unchanging things (gallery
thumbnails) are cached.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import pandas as pd
import streamlit as st

from sluice.cli.output import human_bytes, when
from sluice.errors import InvalidArgument
from sluice.ids import validate_id
from sluice.job_states import SEVERITIES, SEVERITY_CHOICES, STAGE_STATES, TASK_STATES, task_counts
from sluice.v1 import common_pb2, scheduler_pb2
from sluice_dashboard import export_zip, job_figures, session, ui
from sluice_dashboard.client import SCHEDULER, ServiceError, Services
from sluice_dashboard.views import gallery

LIVE_S = 1.0
TABS_S = 2.0
LOG_PAGE_SIZE = 100
EVENTS_TIMEOUT_S = 10.0
FLASH = "_job_flash"  # a message to show once after the page reruns (abort, restart)
MACHINE_CHOICES: dict[str, common_pb2.MachineType] = {
    "keep the job's": common_pb2.MACHINE_TYPE_UNSPECIFIED,
    **{name: value for value, name in job_figures.MACHINE_NAMES.items()},
}


def _back_to_jobs(message: str) -> None:
    st.error(message)
    ui.page_link("jobs", "Back to Jobs")


def _job_id() -> str | None:
    """The job id from the URL, or None after saying what is wrong with it."""
    asked = st.query_params.get("job_id", "")
    if not asked:
        _back_to_jobs("No job chosen: open a job from the Jobs page.")
        return None
    try:
        return validate_id(asked, "job id")
    except InvalidArgument as error:
        _back_to_jobs(str(error))
        return None


def _get_job(svc: Services, job_id: str) -> scheduler_pb2.Job | None:
    """The job, or None after showing why not (unknown job: a link back to Jobs)."""
    try:
        job: scheduler_pb2.Job = svc.call(SCHEDULER, "GetJob", scheduler_pb2.GetJobRequest(job_id=job_id))
        return job
    except ServiceError as error:
        if error.code.name == "NOT_FOUND":
            _back_to_jobs(f"There is no job {job_id} in this workspace.")
        else:
            ui.show_error(error)
        return None


def _timer(job: scheduler_pb2.Job, every_s: float) -> float | None:
    return every_s if not job_figures.is_ended(job) else None


def _live_fragment(
    body: Callable[[Services, scheduler_pb2.Job], None], svc: Services, job: scheduler_pb2.Job, every_s: float
) -> None:
    """Run `body` with a fresh GetJob in a fragment refreshed every `every_s` while the job has not
    ended; when it ends the page reruns once so that its fragments drop their timers."""
    refreshing = not job_figures.is_ended(job)

    def run() -> None:
        current = _get_job(svc, job.job_id)
        if current is None:
            return
        if refreshing and job_figures.is_ended(current):
            st.rerun(scope="app")
        body(svc, current)

    st.fragment(run, run_every=every_s if refreshing else None)()


# The live header: state, progress, figures, notice, and the controls that depend on the state.


def _header(svc: Services, job: scheduler_pb2.Job) -> None:
    figures = job_figures.figures(job)
    state, rate, eta, machine, credits = st.columns(5)
    state.metric("State", figures.state)
    rate.metric("Items/s", "-" if figures.throughput is None else f"{figures.throughput:.2f}")
    eta.metric("ETA", job_figures.duration(figures.eta_s))
    machine.metric(
        "Machine time", job_figures.duration(figures.machine_seconds), help=f"{figures.machine} machines"
    )
    credits.metric("Credits", f"{figures.credits:.4f}")
    stage = f" ({figures.stage} stage)" if figures.stage else ""
    st.progress(figures.fraction, text=f"{figures.items_done} / {figures.items_total} items{stage}")
    if figures.items_failed:
        st.caption(f"{figures.items_failed} items failed")
    if job.notice:
        st.info(ui.plain(job.notice))
    if job.error:
        st.error(ui.plain(job.error))
    if job_figures.is_active(job):
        _abort_controls(svc, job)
    elif job.state in job_figures.RESTARTABLE:
        _restart_form(svc, job)


def _abort_controls(svc: Services, job: scheduler_pb2.Job) -> None:
    """'Abort job', then a second click to confirm (an abort withdraws every queued task)."""
    asked = f"_job_abort_asked_{job.job_id}"
    if st.button("Abort job", key="job_abort", type="secondary"):
        st.session_state[asked] = True
    if not st.session_state.get(asked):
        return
    st.warning(
        "Abort this job? Its queued tasks are withdrawn and its running ones stopped; "
        "a restart can finish it later."
    )
    confirm, cancel = st.columns(2)
    if cancel.button("Keep it running", key="job_abort_cancel"):
        st.session_state[asked] = False
        st.rerun()
    if confirm.button("Yes, abort the job", key="job_abort_confirm", type="primary"):
        st.session_state[asked] = False
        try:
            aborted = svc.call(SCHEDULER, "AbortJob", scheduler_pb2.AbortJobRequest(job_id=job.job_id))
        except ServiceError as error:
            ui.show_error(error)
            return
        st.session_state[FLASH] = f"Job {job.job_id} {job_figures.state_label(aborted)}."
        st.rerun(scope="app")


def restart_request(
    job_id: str,
    machine: str,
    workers: int,
    parallel: int,
    runtime_s: float | None,
    failure_rate: float | None,
) -> scheduler_pb2.RestartJobRequest:
    """The RestartJob request of the form: unset (0, empty, "keep") keeps the job's value, as with
    `sluice batch-processing restart-job`."""
    request = scheduler_pb2.RestartJobRequest(
        job_id=job_id,
        machine_type=MACHINE_CHOICES[machine],
        workers_per_machine=workers,
        max_parallel_tasks=parallel,
    )
    if runtime_s is not None:
        request.max_runtime_seconds = runtime_s
    if failure_rate is not None:
        request.max_image_failure_rate = failure_rate
    return request


def _restart_form(svc: Services, job: scheduler_pb2.Job) -> None:
    with st.expander("Restart with overrides", expanded=True), st.form("job_restart_form"):
        st.caption(
            "Reruns what the job did not finish as its next attempt. Empty or 0 keeps the job's value."
        )
        left, right = st.columns(2)
        machine = left.selectbox("Machine type", list(MACHINE_CHOICES), key="job_restart_machine")
        workers = left.number_input(
            "Workers per machine", min_value=0, step=1, value=0, key="job_restart_workers",
            help=f"task slots per worker machine; now {job.workers_per_machine or 'every slot'}",
        )  # fmt: skip
        parallel = left.number_input(
            "Max parallel tasks", min_value=0, step=1, value=0, key="job_restart_parallel",
            help=f"now {job.max_parallel_tasks or 'no limit'}",
        )  # fmt: skip
        runtime = right.number_input(
            "Max runtime seconds", min_value=0.0, value=None, key="job_restart_runtime",
            help=f"machine time the job may use; now {job.max_runtime_seconds or 'no cap'} (0: no cap)",
        )  # fmt: skip
        rate = right.number_input(
            "Max image failure rate", min_value=0.0, max_value=1.0, value=None,
            key="job_restart_failure_rate",
            help=f"fraction of items that may fail, 0 to 1; now {job.max_image_failure_rate:g}",
        )  # fmt: skip
        submitted = st.form_submit_button("Restart job", key="job_restart", type="primary")
    if not submitted:
        return
    request = restart_request(job.job_id, machine, int(workers), int(parallel), runtime, rate)
    try:
        restarted = svc.call(SCHEDULER, "RestartJob", request)
    except ServiceError as error:
        ui.show_error(error)
        return
    st.session_state[FLASH] = f"Job {job.job_id} restarted (attempt {restarted.attempt})."
    st.rerun(scope="app")


# Tabs.


def _stages_table(job: scheduler_pb2.Job) -> pd.DataFrame:
    return pd.DataFrame.from_records(
        [
            {
                "Stage": s.name,
                "State": STAGE_STATES.get(s.state, "-"),
                "Tasks": f"{s.tasks_done} / {s.tasks_total}",
                "Task states": task_counts(s.task_counts),
                "Items": f"{s.items_done} / {s.items_total}",
                "Failed": s.items_failed,
                "Output batch": s.output_batch_id,
            }
            for s in job.stages
        ]
    )


def _progress_tab(svc: Services, job: scheduler_pb2.Job) -> None:
    st.subheader("Items done over time")
    events = scheduler_pb2.ListEventsRequest(job_id=job.job_id)
    try:
        points = job_figures.progress_history(
            svc.stream(SCHEDULER, "ListEvents", events, timeout_s=EVENTS_TIMEOUT_S)
        )
    except ServiceError as error:
        ui.show_error(error)
        points = []
    if points:
        start = points[0].time
        history = pd.DataFrame(
            {
                "seconds": [round((p.time - start).total_seconds(), 1) for p in points],
                "stage": [p.stage for p in points],
                "items done": [p.items_done for p in points],
            }
        )
        chart = history.pivot_table(index="seconds", columns="stage", values="items done", aggfunc="last")
        chart = chart.ffill().fillna(0)
        st.line_chart(chart, x_label=f"seconds since {start:%H:%M:%S} UTC", y_label="items done")
        stage = job_figures.processing_stage(job)
        if stage is not None:
            recent = job_figures.recent_throughput(points, stage.name)
            if recent is not None:
                st.caption(f"{stage.name}: {job_figures.rate_text(recent)} over its last progress events")
    else:
        st.caption("No progress yet.")
    st.subheader("Stages")
    st.dataframe(_stages_table(job), hide_index=True)


def _tasks_tab(svc: Services, job: scheduler_pb2.Job) -> None:
    if not job.tasks:
        st.caption("No running, failed or interrupted tasks.")
        return
    st.caption("Tasks running, failed or interrupted (at most 100).")
    st.dataframe(
        pd.DataFrame.from_records(
            [
                {
                    "Task": t.task_id,
                    "Stage": t.stage,
                    "State": TASK_STATES.get(t.state, "-"),
                    "Items": f"{t.items_done} / {t.items_total}",
                    "Failed": t.items_failed,
                    "Worker": t.worker_id,
                    "Deliveries": t.deliveries,
                    "Machine s": round(t.machine_seconds, 2),
                    "Error": t.error,
                }
                for t in job.tasks
            ]
        ),
        hide_index=True,
    )


def _log_rows(records: list[scheduler_pb2.LogRecord]) -> pd.DataFrame:
    return pd.DataFrame.from_records(
        [
            {
                "Time": when(r.time),
                "Severity": SEVERITIES.get(r.severity, "-"),
                "Source": r.source,
                "Task": r.task_id,
                "Message": r.message,
            }
            for r in records
        ],
        columns=["Time", "Severity", "Source", "Task", "Message"],
    )


def _errors_tab(svc: Services, job: scheduler_pb2.Job) -> None:
    if job.error:
        st.markdown("**The job's error**")
        st.code(job.error, language=None, wrap_lines=True)
    failed = [t for t in job.tasks if t.state == scheduler_pb2.TASK_STATE_FAILED]
    if failed:
        st.markdown("**Failed tasks**")
        st.dataframe(
            pd.DataFrame.from_records(
                [
                    {"Task": t.task_id, "Stage": t.stage, "Items": t.items_total, "Error": t.error}
                    for t in failed
                ]
            ),
            hide_index=True,
        )
    request = scheduler_pb2.FetchLogsRequest(
        job_id=job.job_id, min_severity=scheduler_pb2.LOG_SEVERITY_ERROR, page_size=LOG_PAGE_SIZE
    )
    try:
        found = svc.call(SCHEDULER, "FetchLogs", request)
    except ServiceError as error:
        ui.show_error(error)
        return
    if found.records:
        st.markdown("**Error log records**")
        st.dataframe(_log_rows(list(found.records)), hide_index=True)
    if not (job.error or failed or found.records):
        st.caption("No errors.")


def _logs_tab(svc: Services, job: scheduler_pb2.Job) -> None:
    choice = st.selectbox(
        "Severity", ["all", *SEVERITY_CHOICES], key="job_log_severity", help="this severity and above"
    )
    pager = ui.Pager(f"job_logs_{job.job_id}")
    if st.session_state.get("_job_log_severity_shown", choice) != choice:
        pager.reset()
    st.session_state["_job_log_severity_shown"] = choice
    request = scheduler_pb2.FetchLogsRequest(
        job_id=job.job_id,
        min_severity=SEVERITY_CHOICES.get(choice, scheduler_pb2.LOG_SEVERITY_UNSPECIFIED),
        page_size=LOG_PAGE_SIZE,
        page_token=pager.token,
    )
    try:
        found = svc.call(SCHEDULER, "FetchLogs", request)
    except ServiceError as error:
        ui.show_error(error)
        return
    if found.records:
        st.dataframe(_log_rows(list(found.records)), hide_index=True)
    else:
        st.caption("No log records at this severity.")
    pager.controls(found.next_page_token)


def _outputs_tab(svc: Services, job: scheduler_pb2.Job) -> None:
    st.markdown("**Output batches**")
    st.dataframe(
        pd.DataFrame.from_records(
            [
                {
                    "Stage": s.name,
                    "State": STAGE_STATES.get(s.state, "-"),
                    "Batch": f"batch?batch_id={quote(s.output_batch_id)}",
                }
                for s in job.stages
                if s.output_batch_id
            ],
            columns=["Stage", "State", "Batch"],
        ),
        column_config={"Batch": st.column_config.LinkColumn("Batch", display_text=r"batch\?batch_id=(.*)")},
        hide_index=True,
    )
    st.caption("A stage's output batch is registered when the stage completes.")
    st.markdown("**Usage**")
    cpu, gpu, credits = st.columns(3)
    cpu.metric("CPU time", job_figures.duration(job.usage.cpu_seconds))
    gpu.metric("GPU time", job_figures.duration(job.usage.gpu_seconds))
    credits.metric("Credits", f"{job.usage.credits:.4f}")
    _export_download(svc, job)


def _export_stage(job: scheduler_pb2.Job) -> scheduler_pb2.Stage | None:
    return job.stages[-1] if len(job.stages) > 1 else None


def _export_download(svc: Services, job: scheduler_pb2.Job) -> None:
    st.markdown("**Export**")
    stage = _export_stage(job)
    if stage is None or stage.state != scheduler_pb2.STAGE_STATE_COMPLETED:
        st.caption("The export can be downloaded once the export stage has completed.")
        return
    ready = "_job_export_zip"  # (job id, zip): one export per session, the last one packed
    if st.button(
        "Prepare export download", key="job_prepare_export", help="packs the export batch into one .zip"
    ):
        try:
            with st.spinner("Packing the export..."):
                st.session_state[ready] = (job.job_id, export_zip.export_zip(svc, stage.output_batch_id))
        except export_zip.TooLarge as refusal:
            st.error(ui.plain(str(refusal)))
        except ServiceError as error:
            ui.show_error(error)
    held = st.session_state.get(ready)
    data = held[1] if isinstance(held, tuple) and held[0] == job.job_id else None
    if isinstance(data, bytes):
        st.download_button(
            "Download export",
            data,
            file_name=f"{stage.output_batch_id}.zip",
            mime="application/zip",
            key="job_download_export",
            on_click="ignore",
        )
        command = export_zip.export_command(stage.output_batch_id)
        st.caption(f"{human_bytes(len(data))}; the CLI does the same with `{command}`")


def render() -> None:
    svc = session.require_services()
    job_id = _job_id()
    if job_id is None:
        return
    st.title(f"Job {ui.plain(job_id)}")
    flash = st.session_state.pop(FLASH, None)
    if flash:
        st.success(ui.plain(str(flash)))
    job = _get_job(svc, job_id)
    if job is None:
        return
    st.caption(
        f"workflow {ui.plain(job.workflow_id)} v{job.workflow_version} on batch {ui.plain(job.batch_id)}, "
        f"attempt {job.attempt}, created {when(job.created_at)}"
    )
    _live_fragment(_header, svc, job, LIVE_S)
    tabs = st.tabs(["Progress", "Tasks", "Errors", "Logs", "Outputs", "Gallery"])
    with tabs[0]:
        _live_fragment(_progress_tab, svc, job, TABS_S)
    with tabs[1]:
        _live_fragment(_tasks_tab, svc, job, TABS_S)
    with tabs[2]:
        _live_fragment(_errors_tab, svc, job, TABS_S)
    with tabs[3]:
        _live_fragment(_logs_tab, svc, job, TABS_S)
    with tabs[4]:
        _live_fragment(_outputs_tab, svc, job, TABS_S)
    with tabs[5]:
        gallery.render(svc, job)
