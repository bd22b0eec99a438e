"""The models page: the built-in models and those registered in the workspace, with what a
workflow step needs to know about each (task, output layout, classes, input size).

Registering needs an ONNX file and its spec; the CLI does that well (`sluice models register`),
so this page shows the command rather than repeating its options.
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from sluice.cli.output import human_bytes, when
from sluice.v1 import models_pb2
from sluice_dashboard import session, ui
from sluice_dashboard.client import MODELS, ServiceError

CLASS_NAMES_SHOWN = 8
REGISTER_HINT = (
    "sluice models register --model-id my-project/detector --file model.onnx \\\n"
    "    --task object-detection --class-names car,bus,truck --input-size 640x640"
)


def spec_of(model: Any) -> dict[str, Any]:
    """The model's spec, or {} when it is not a JSON object (never a traceback over one model)."""
    try:
        spec = json.loads(model.spec_json or "{}")
    except ValueError:
        return {}
    return spec if isinstance(spec, dict) else {}


def _classes(spec: dict[str, Any]) -> str:
    names = [str(n) for n in spec.get("class_names") or []]
    if not names:
        return ""
    shown = ", ".join(names[:CLASS_NAMES_SHOWN])
    more = len(names) - CLASS_NAMES_SHOWN
    return f"{len(names)}: {shown}" + (f", … ({more} more)" if more > 0 else "")


def _input_size(spec: dict[str, Any]) -> str:
    size = spec.get("input_size")
    if isinstance(size, list) and len(size) == 2:
        return f"{size[0]}x{size[1]}"
    return "dynamic" if size in (None, "dynamic") else str(size)


def model_row(model: Any) -> dict[str, Any]:
    spec = spec_of(model)
    return {
        "Model": model.model_id,
        "Task": model.task,
        "Layout": str(spec.get("output_layout", "")),
        "Classes": _classes(spec),
        "Input size": _input_size(spec),
        "Size": "" if model.built_in else human_bytes(model.size_bytes),
        "SHA-256": model.sha256[:12],
        "Created": "built-in" if model.built_in else when(model.created_at),
    }


def render() -> None:
    svc = session.require_services()
    st.title("Models")
    st.caption("Models a workflow step can name in its `model_id`: the built-in ones and your workspace's.")
    try:
        models = list(svc.call(MODELS, "ListModels", models_pb2.ListModelsRequest()).models)
    except ServiceError as error:
        ui.show_error(error)
        models = None
    if models is not None and not models:
        st.info("No models are registered in this workspace yet.")
    if models:
        st.dataframe([model_row(m) for m in models], hide_index=True, key="models_table")
        picked = st.selectbox("Spec of", [m.model_id for m in models], key="models_pick")
        chosen = next((m for m in models if m.model_id == picked), None)
        if chosen is not None:
            with st.expander("Spec (JSON)"):
                st.json(spec_of(chosen))
    st.subheader("Adding a model")
    st.write("Register an ONNX file and its spec from the command line:")
    st.code(REGISTER_HINT, language="bash")
    st.caption("`sluice models register --help` lists every spec option (layout, resize, mean and std, …).")
