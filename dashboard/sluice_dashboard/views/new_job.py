"""The New job page: every option of `sluice batch-processing process-*-with-workflow` as a form,
the workflow's declared parameters as fields of their own, the cost and runtime estimate, and
starting the job.

Each field has an empty slot under it; a mistake the form can see (job_form.build_request) or
one the scheduler names is written there, so the user reads it next to what to change.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from sluice.cli.usage_commands import MACHINE_NAMES
from sluice.cli.usage_commands import duration_text as machine_time_text
from sluice.ids import ID_RULE
from sluice.job_states import JOB_STATES
from sluice.v1 import scheduler_pb2, staging_pb2
from sluice_dashboard import job_form, session, ui
from sluice_dashboard.browser_upload import KINDS
from sluice_dashboard.client import SCHEDULER, STAGING, ServiceError, Services
from sluice_dashboard.job_form import JobFormValues, ParameterField

BATCH_PAGES = 3  # the batch list offers the newest of this many pages; any id can be typed
BATCH_PAGE_SIZE = 100
ESTIMATE_TIMEOUT_S = 600.0
CREATE_TIMEOUT_S = 60.0
ESTIMATE = "new_job_estimate"
STARTED = "new_job_started"

Slots = dict[str, DeltaGenerator]


def _batch_choices(svc: Services, kind: str) -> list[str]:
    """Live batches of the kind, newest first, from the first BATCH_PAGES pages."""
    wanted = KINDS[kind]
    ids: list[str] = []
    token = ""
    for _ in range(BATCH_PAGES):
        found = svc.call(
            STAGING,
            "ListBatches",
            staging_pb2.ListBatchesRequest(page_size=BATCH_PAGE_SIZE, page_token=token),
        )
        ids.extend(b.batch_id for b in found.batches if b.type == wanted and not b.HasField("expired_at"))
        token = found.next_page_token
        if not token:
            break
    return ids


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def _image_outputs(definition_json: str) -> tuple[str, ...] | None:
    return job_form.image_outputs(definition_json)


def _parameter_widget(param: ParameterField, key: str) -> Any:
    label, initial = param.name, param.initial()
    if param.widget == job_form.SLIDER_01:
        return st.slider(label, 0.0, 1.0, value=float(initial), step=0.01, key=key)
    if param.widget == job_form.INTEGER:
        return st.number_input(label, value=int(initial), step=1, key=key)
    if param.widget == job_form.NUMBER:
        return st.number_input(label, value=float(initial), step=0.01, key=key)
    if param.widget == job_form.BOOLEAN:
        return st.checkbox(label, value=bool(initial), key=key)
    if param.widget == job_form.TEXT:
        return st.text_input(label, value=str(initial), key=key)
    kinds = " or ".join(param.kinds) or "any JSON value"
    return st.text_area(label, value=str(initial), key=key, help=f"JSON: {kinds}; empty: no value", height=80)


def _parameters(workflow_id: str, params: list[ParameterField], slots: Slots) -> dict[str, Any]:
    if not params:
        return {}
    st.subheader("Workflow parameters")
    st.caption("Prefilled with the workflow's defaults; only changed values are sent.")
    held: dict[str, Any] = {}
    for param in params:
        held[param.name] = _parameter_widget(param, f"job_param_{workflow_id}_{param.name}")
        slots[param.error_key] = st.empty()
    return held


def _outputs(definition: str, save: bool) -> list[str]:
    if not save:
        return []
    known = _image_outputs(definition) if definition else None
    if known is None:
        typed = st.text_input(
            "Image outputs to save", key="job_outputs_typed", help="Output names, comma-separated; empty: all"
        )
        return [name.strip() for name in typed.split(",") if name.strip()]
    if not known:
        st.caption("This workflow has no image outputs to save.")
        return []
    chosen = st.multiselect("Image outputs to save", list(known), key="job_outputs", help="None chosen: all")
    return [str(name) for name in chosen]


def _form(svc: Services, slots: Slots) -> tuple[JobFormValues, list[ParameterField]] | None:
    """Draw the form; what it holds and the workflow's parameters (None when a list failed)."""
    kind = str(st.radio("Input", ["images", "videos"], key="job_input", horizontal=True))
    try:
        batches = _batch_choices(svc, kind)
        workflows = svc.call(SCHEDULER, "ListWorkflows", scheduler_pb2.ListWorkflowsRequest()).workflows
    except ServiceError as error:
        ui.show_error(error)
        return None
    left, right = st.columns(2)
    with left:
        chosen = st.selectbox(
            "Batch", batches, key="job_batch", index=0 if batches else None,
            placeholder=f"no {kind} batches yet" if not batches else "choose a batch",
        )  # fmt: skip
        typed = st.text_input(
            "Or type a batch id", key="job_batch_typed", help=f"Any batch of this workspace; {ID_RULE}"
        )
        slots[job_form.BATCH] = st.empty()
    definitions = {w.workflow_id: w.definition_json for w in workflows}
    with right:
        workflow_id = st.selectbox(
            "Workflow", list(definitions), key="job_workflow", index=0 if definitions else None,
            placeholder="no workflows yet: create one on the Workflows page",
        )  # fmt: skip
        slots[job_form.WORKFLOW] = st.empty()
    definition = definitions.get(str(workflow_id), "") if workflow_id else ""
    machine, workers, parallel = st.columns(3)
    with machine:
        machine_type = str(st.radio("Machine type", ["cpu", "gpu"], key="job_machine", horizontal=True))
        slots[job_form.MACHINE] = st.empty()
    with workers:
        workers_per_machine = st.number_input(
            "Workers per machine",
            min_value=0,
            value=0,
            step=1,
            key="job_workers",
            help="0: each worker's own",
        )
        slots[job_form.WORKERS] = st.empty()
    with parallel:
        max_parallel = st.number_input(
            "Max parallel tasks", min_value=0, value=0, step=1, key="job_parallel", help="0: no limit"
        )
        slots[job_form.PARALLEL] = st.empty()
    save = st.checkbox("Save image outputs", key="job_save_images", help="Keep the annotated images")
    outputs = _outputs(definition, save)
    slots[job_form.OUTPUTS] = st.empty()
    fps = segment = ""
    if kind == "videos":
        fps_col, segment_col = st.columns(2)
        with fps_col:
            fps = st.text_input("Max video fps", key="job_fps", help="Sub-sample frames; empty: every frame")
            slots[job_form.FPS] = st.empty()
        with segment_col:
            segment = st.text_input(
                "Segment seconds",
                key="job_segment",
                help="Longer videos are cut into parallel segments; empty: 300",
            )
            slots[job_form.SEGMENT] = st.empty()
    runtime_col, rate_col, format_col = st.columns(3)
    with runtime_col:
        runtime = st.text_input(
            "Max runtime seconds", key="job_runtime", help="Machine time cap; empty: none"
        )
        slots[job_form.RUNTIME] = st.empty()
    with rate_col:
        rate = st.text_input(
            "Max image failure rate",
            key="job_failure_rate",
            help="A fraction 0..1 (0.05 = 5%); empty: no limit",
        )
        slots[job_form.FAILURE_RATE] = st.empty()
    with format_col:
        fmt = str(st.radio("Aggregation format", ["jsonl", "csv"], key="job_format", horizontal=True))
        slots[job_form.FORMAT] = st.empty()
    params = job_form.parameter_fields(definition) if definition else []
    held = _parameters(str(workflow_id), params, slots)
    id_col, url_col = st.columns(2)
    with id_col:
        job_id = st.text_input("Job id (optional)", key="job_id", help=f"Empty: one is chosen; {ID_RULE}")
        slots[job_form.JOB_ID] = st.empty()
    with url_col:
        url = st.text_input(
            "Notifications URL (optional)", key="job_notify", help="The job's events are POSTed here"
        )
        slots[job_form.NOTIFICATIONS] = st.empty()
    values = JobFormValues(
        input_kind=kind,
        batch_id=(typed or "").strip() or str(chosen or ""),
        workflow_id=str(workflow_id or ""),
        machine_type=machine_type,
        workers_per_machine=int(workers_per_machine),
        max_parallel_tasks=int(max_parallel),
        save_image_outputs=save,
        image_outputs_to_save=outputs,
        max_video_fps=fps,
        video_segment_seconds=segment,
        max_runtime_seconds=runtime,
        max_image_failure_rate=rate,
        aggregation_format=fmt,
        parameters=held,
        job_id=job_id,
        notifications_url=url,
    )
    return values, params


def _refused(
    error: ServiceError, params: list[ParameterField], slots: Slots, under_form: DeltaGenerator
) -> None:
    """A refusal under the form, and under the field its text names."""
    if error.down:
        ui.show_error(error)
        return
    key = job_form.field_for_message(error.details, params)
    if key in slots and key != job_form.FORM:
        slots[key].error(error.details)
    under_form.error(f"The scheduler refused: {error.details}")


def _show_estimate(estimate: scheduler_pb2.JobEstimate, kind: str) -> None:
    items = "frames" if kind == "videos" else "images"
    st.subheader("Estimate")
    sample, machine, wall, credits = st.columns(4)
    sample.metric("Sample", f"{estimate.sample_items} of {estimate.items_total} {items}")
    machine_name = MACHINE_NAMES.get(estimate.machine_type, "?")
    machine.metric("Machine time", machine_time_text(estimate.machine_seconds), help=f"on {machine_name}")
    wall.metric("Wall time", machine_time_text(estimate.wall_seconds), help=f"on {estimate.slots} slots")
    credits.metric("Credits", f"{estimate.credits:.4f}")
    sample_time = machine_time_text(estimate.sample_machine_seconds)
    st.caption(f"The sample took {sample_time} of machine time; no job was started.")


def _estimate(svc: Services, request: scheduler_pb2.CreateJobRequest) -> scheduler_pb2.JobEstimate:
    with st.spinner("Running the workflow on a small sample of the batch on a real worker..."):
        estimate: scheduler_pb2.JobEstimate = svc.call(
            SCHEDULER, "EstimateJob", request, timeout_s=ESTIMATE_TIMEOUT_S
        )
    st.session_state[ESTIMATE] = (request.SerializeToString(), estimate.SerializeToString())
    return estimate


def _start(svc: Services, request: scheduler_pb2.CreateJobRequest) -> None:
    job: scheduler_pb2.Job = svc.call(SCHEDULER, "CreateJob", request, timeout_s=CREATE_TIMEOUT_S)
    st.session_state[STARTED] = (job.job_id, JOB_STATES.get(job.state, "?"), job.notice)


def _last_started() -> None:
    started = st.session_state.get(STARTED)
    if not started:
        return
    job_id, state, notice = started
    st.success(ui.plain(f"Job {job_id} started ({state})."))
    if notice:
        st.info(ui.plain(notice))
    ui.page_link("job", f"Open job {job_id}", job_id=job_id)


def render() -> None:
    svc = session.require_services()
    st.title("New job")
    slots: Slots = {}
    drawn = _form(svc, slots)
    if drawn is None:
        return
    values, params = drawn
    estimate_col, start_col = st.columns([1, 1])
    estimate_clicked = estimate_col.button("Estimate cost and runtime", key="job_estimate")
    start_clicked = start_col.button("Start job", key="job_start", type="primary")
    under_form = st.empty()
    result = job_form.build_request(values, params) if estimate_clicked or start_clicked else None
    if result is not None and result.request is None:
        for key, message in result.errors.items():
            (slots.get(key) or under_form).error(message)
        under_form.error("Nothing was started: fix the fields marked above.")
    elif result is not None and result.request is not None:
        try:
            if estimate_clicked:
                _estimate(svc, result.request)
            else:
                _start(svc, result.request)
        except ServiceError as error:
            _refused(error, params, slots, under_form)
    _last_estimate(values, params)
    _last_started()


def _last_estimate(values: JobFormValues, params: list[ParameterField]) -> None:
    """The last estimate, while the form still describes the job it was made for."""
    saved = st.session_state.get(ESTIMATE)
    if not saved:
        return
    current = job_form.build_request(values, params).request
    if current is None or current.SerializeToString() != saved[0]:
        return
    estimate = scheduler_pb2.JobEstimate()
    estimate.ParseFromString(saved[1])
    _show_estimate(estimate, values.input_kind)
