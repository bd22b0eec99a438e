"""The workflows page: the workspace's workflows, one's definition and graph, and creating one.

Creating runs first (into a container drawn below the list) so that a workflow just created is
already listed and selected in the same run. A refusal is shown where it belongs: bad JSON as
the parser's line and column under the text area, a compiler refusal under the step it names
(and that step drawn red in the graph), a bad id under the id field.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import PurePath
from typing import Any

import streamlit as st

from sluice.cli.output import when
from sluice.errors import InvalidArgument
from sluice.ids import validate_id
from sluice.v1 import scheduler_pb2
from sluice_dashboard import session, ui
from sluice_dashboard.client import SCHEDULER, ServiceError, Services
from sluice_dashboard.compile_errors import Fault, fault_of
from sluice_dashboard.ui import plain
from sluice_dashboard.workflow_graph import workflow_dot

PICK = "workflows_pick"
VERSION = "workflows_version_"  # + the workflow id: each workflow keeps its own choice
NEW_ID = "workflow_new_id"
NEW_JSON = "workflow_json"
NEW_FILE = "workflow_file"
FILE_PROBLEM = "workflow_file_problem"
CREATE_TIMEOUT_S = 15.0


def render() -> None:
    svc = session.require_services()
    st.title("Workflows")
    listing = st.container()
    st.divider()
    _create_section(svc)
    with listing:
        _listing(svc)


# --- the list and the selected workflow ---------------------------------------------------


def _listing(svc: Services) -> None:
    try:
        workflows = list(svc.call(SCHEDULER, "ListWorkflows", scheduler_pb2.ListWorkflowsRequest()).workflows)
    except ServiceError as error:
        ui.show_error(error)
        return
    if not workflows:
        st.info("No workflows yet. Create one below, or with `sluice workflows create`.")
        return
    st.dataframe(
        [
            {
                "Workflow": w.workflow_id,
                "Version": w.version,
                "Steps": _step_count(w.definition_json),
                "Created": when(w.created_at),
            }
            for w in workflows
        ],
        hide_index=True,
        key="workflows_table",
    )
    by_id = {w.workflow_id: w for w in workflows}
    asked = st.query_params.get("workflow_id", "")
    if st.session_state.get(PICK) not in by_id:
        st.session_state[PICK] = asked if asked in by_id else workflows[0].workflow_id
    chosen = st.selectbox("Workflow", list(by_id), key=PICK)
    if chosen is None:
        return
    if asked != chosen:
        st.query_params["workflow_id"] = chosen
    latest = by_id[chosen]
    versions = list(range(latest.version, 0, -1))
    version_key = VERSION + chosen
    if st.session_state.get(version_key) not in versions:
        st.session_state[version_key] = latest.version
    version = st.selectbox(
        "Version", versions, key=version_key, help="The latest version is what new jobs run."
    )
    workflow = latest
    if version != latest.version:
        try:
            workflow = svc.call(
                SCHEDULER,
                "GetWorkflow",
                scheduler_pb2.GetWorkflowRequest(workflow_id=chosen, version=version),
            )
        except ServiceError as error:
            ui.show_error(error)
            return
    _show(workflow)


def _step_count(definition_json: str) -> int:
    try:
        steps = json.loads(definition_json).get("steps", [])
    except (ValueError, AttributeError):
        return 0
    return len(steps) if isinstance(steps, list) else 0


def _show(workflow: Any) -> None:
    definition = json.loads(workflow.definition_json or "{}")
    st.caption(f"version {workflow.version}, created {when(workflow.created_at)}")
    graph, text = st.tabs(["Graph", "Definition"])
    with graph:
        st.graphviz_chart(workflow_dot(definition))
    with text:
        st.json(definition)


# --- creating one ----------------------------------------------------------------------------


def _read_file() -> None:
    """The uploaded file's text goes into the text area (to check or edit before creating), and
    its name becomes the id when none is typed."""
    upload = st.session_state.get(NEW_FILE)
    st.session_state[FILE_PROBLEM] = ""
    if upload is None:
        return
    try:
        st.session_state[NEW_JSON] = upload.getvalue().decode("utf-8")
    except UnicodeDecodeError:
        st.session_state[FILE_PROBLEM] = f"{upload.name} is not UTF-8 text."
        return
    if not st.session_state.get(NEW_ID):
        stem = PurePath(upload.name).stem.lower()
        with contextlib.suppress(InvalidArgument):
            st.session_state[NEW_ID] = validate_id(stem, "workflow id")


def _create_section(svc: Services) -> None:
    st.subheader("Create a workflow")
    st.caption(
        "Paste a definition (Roboflow Workflows JSON) or upload a .json file. Creating it again "
        "with changes stores a new version; jobs started later run the latest one."
    )
    workflow_id = st.text_input("Workflow id", key=NEW_ID, placeholder="e.g. text-detection")
    id_problem = st.empty()
    st.file_uploader("Upload a .json file", type=["json"], key=NEW_FILE, on_change=_read_file)
    if problem := st.session_state.get(FILE_PROBLEM):
        st.error(plain(problem))
    text = st.text_area("Definition (JSON)", key=NEW_JSON, height=260)
    json_problem = st.empty()
    if not st.button("Create workflow", key="workflow_create", type="primary"):
        return
    try:
        validate_id((workflow_id or "").strip(), "workflow id")
    except InvalidArgument as error:
        id_problem.error(plain(error.message))
        return
    definition = _parse(text or "", json_problem)
    if definition is None:
        return
    _submit(svc, workflow_id.strip(), text, definition, id_problem, json_problem)


def _parse(text: str, problem: Any) -> dict[str, Any] | None:
    """The definition, or None after saying under the text area why it is not one."""
    if not text.strip():
        problem.error("Paste a workflow definition (or upload a .json file).")
        return None
    try:
        definition = json.loads(text)
    except json.JSONDecodeError as error:
        problem.error(plain(f"Not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."))
        return None
    if not isinstance(definition, dict):
        problem.error("A workflow definition is a JSON object ({...}).")
        return None
    return definition


def _submit(
    svc: Services, workflow_id: str, text: str, definition: dict[str, Any], id_problem: Any, json_problem: Any
) -> None:
    request = scheduler_pb2.CreateWorkflowRequest(workflow_id=workflow_id, definition_json=text)
    try:
        created = svc.call(SCHEDULER, "CreateWorkflow", request, timeout_s=CREATE_TIMEOUT_S)
    except ServiceError as error:
        if error.down or error.code.name != "INVALID_ARGUMENT":
            ui.show_error(error)
        elif error.details.startswith("invalid workflow id"):
            id_problem.error(plain(error.details))
        else:
            with json_problem.container():
                _refusal(definition, error.details)
        return
    st.success(plain(f"Workflow {created.workflow_id} version {created.version} is stored."))
    st.session_state[PICK] = created.workflow_id
    st.session_state.pop(VERSION + created.workflow_id, None)  # show the new latest version


def _named(entries: Any) -> list[dict[str, Any]]:
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)]


def _refusal(definition: dict[str, Any], message: str) -> None:
    """The compiler's message under what it blames, and the graph with those parts in red."""
    fault = fault_of(message)
    st.error(plain(f"The workflow was not created: {message}" if not fault.placed else _summary(fault)))
    groups = (
        ("input", "inputs", fault.inputs),
        ("step", "steps", fault.steps),
        ("output", "outputs", fault.outputs),
    )
    for kind, section, blamed in groups:
        entries = _named(definition.get(section))
        if kind != "step" and not blamed:
            continue
        st.markdown(f"**{section.capitalize()}**")
        for entry in entries:
            label = f"{kind} {entry['name']}" + (
                f"  ({entry['type']})" if isinstance(entry.get("type"), str) else ""
            )
            st.text(label)
            if entry["name"] in blamed:
                st.error(plain(message))
    st.graphviz_chart(workflow_dot(definition, fault.steps, fault.inputs, fault.outputs))


def _summary(fault: Fault) -> str:
    parts = [
        f"{kind} {', '.join(names)}"
        for kind, names in (("step", fault.steps), ("input", fault.inputs), ("output", fault.outputs))
        if names
    ]
    return f"The workflow was not created: the compiler refused {'; '.join(parts)} (details below)."
