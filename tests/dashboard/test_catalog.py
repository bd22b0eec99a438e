"""The dashboard's workflows, models and usage pages, run with AppTest against a real local
stack; and the two pure helpers behind the workflows page (the graph's DOT text, and which step
a compiler refusal names), checked on the example workflows and the real compiler's messages."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from sluice.errors import InvalidArgument
from sluice.v1 import scheduler_pb2
from sluice.workflow import compile_workflow
from sluice_dashboard import session
from sluice_dashboard.client import SCHEDULER, Addresses
from sluice_dashboard.compile_errors import fault_of, steps_named
from sluice_dashboard.workflow_graph import workflow_dot
from tests.dashboard_stack import WORKFLOWS, DashboardStack
from tests.model_fixtures import constant_model

TEXT_DETECTION = WORKFLOWS / "text-detection.json"
NOWHERE = Addresses("127.0.0.1:9", "127.0.0.1:9")  # nothing listens on the discard port


def unescaped(markdown: str) -> str:
    """A markdown element's text as the user reads it (the page escapes `$`, `_`, ':' ...)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def in_order(node: Any) -> Iterator[Any]:
    """Every element of the page, top to bottom."""
    children = getattr(node, "children", None)
    if children is None:
        yield node
        return
    for child in children.values():
        yield from in_order(child)


def graphs(at: AppTest) -> list[str]:
    return [chart.proto.spec for chart in at.get("graphviz_chart")]


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((WORKFLOWS / f"{name}.json").read_text())
    return loaded


def refusal(mutate: Callable[[dict[str, Any]], None]) -> str:
    definition = example("text-detection")
    mutate(definition)
    with pytest.raises(InvalidArgument) as raised:
        compile_workflow(definition)
    return raised.value.message


# --- pure helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [p.stem for p in sorted(WORKFLOWS.glob("*.json"))])
def test_the_graph_has_a_node_per_part_and_an_edge_per_selector(name: str) -> None:
    definition = example(name)
    dot = workflow_dot(definition)
    for entry in definition["inputs"]:
        assert f'"input:{entry["name"]}" [label="{entry["name"]}\\n{entry["type"]}"' in dot
    for step in definition["steps"]:
        assert f'"step:{step["name"]}" [label="{step["name"]}\\n{step["type"]}"' in dot
        for prop, value in step.items():
            if isinstance(value, str) and value.startswith("$steps."):
                source = value.split(".")[1]
                assert f'"step:{source}" -> "step:{step["name"]}" [label="{prop}"];' in dot
            elif isinstance(value, str) and value.startswith("$inputs."):
                assert f'"input:{value.split(".")[1]}" -> "step:{step["name"]}" [label="{prop}"];' in dot
    for output in definition["outputs"]:
        _, source, field = output["selector"].split(".")
        assert f'"step:{source}" -> "output:{output["name"]}" [label="{field}"];' in dot
    assert "no such" not in dot and "#d62728" not in dot  # nothing missing, nothing failing


def test_the_graph_escapes_names_and_marks_failing_and_missing_steps() -> None:
    definition = example("text-detection")
    definition["steps"][1]["predictions"] = "$steps.ghost.predictions"
    definition["steps"][0]["name"] = 'de"tec\\tor\n'
    dot = workflow_dot(definition, failing_steps=["boxes"])
    assert '"step:de\\"tec\\\\tor\\n" [label="de\\"tec\\\\tor\\n\\nsluice/object_detection_model@v1"' in dot
    boxes = next(line for line in dot.splitlines() if line.strip().startswith('"step:boxes" ['))
    assert 'color="#d62728"' in boxes
    assert '"step:ghost" [label="ghost\\n(no such step)", shape=box, style=dashed' in dot
    assert '"step:ghost" -> "step:boxes" [label="predictions"];' in dot


def test_the_step_a_refusal_names_is_found_in_the_compilers_own_messages() -> None:
    def unknown_block(d: dict[str, Any]) -> None:
        d["steps"][1]["type"] = "sluice/nope@v1"

    def missing_step(d: dict[str, Any]) -> None:
        d["steps"][1]["predictions"] = "$steps.ghost.predictions"

    def missing_output(d: dict[str, Any]) -> None:
        d["steps"][1]["predictions"] = "$steps.detector.nothing"

    def cycle(d: dict[str, Any]) -> None:
        d["steps"][0]["image"] = "$steps.boxes.image"

    def twice(d: dict[str, Any]) -> None:
        d["steps"][1]["name"] = "detector"

    def bad_output(d: dict[str, Any]) -> None:
        d["outputs"][1]["selector"] = "$steps.ghost.image"

    assert steps_named(refusal(unknown_block)) == ("boxes",)
    assert steps_named(refusal(missing_step)) == ("boxes",)
    assert steps_named(refusal(missing_output)) == ("boxes",)  # not 'detector', the step it reads
    assert set(steps_named(refusal(cycle))) == {"boxes", "detector"}
    assert steps_named(refusal(twice)) == ("detector",)
    blamed = fault_of(refusal(bad_output))
    assert blamed.steps == () and blamed.outputs == ("annotated",)
    assert not fault_of("workflow needs a 'version' string").placed


# --- the workflows page ----------------------------------------------------------------------


def create(stack: DashboardStack, workflow_id: str, text: str) -> AppTest:
    at = stack.app("workflows")
    at.run()
    at.text_input(key="workflow_new_id").input(workflow_id)
    at.text_area(key="workflow_json").input(text)
    at.button(key="workflow_create").click()
    at.run()
    assert not at.exception
    return at


def listed(stack: DashboardStack) -> set[str]:
    found = stack.services().call(SCHEDULER, "ListWorkflows", scheduler_pb2.ListWorkflowsRequest())
    return {w.workflow_id for w in found.workflows}


def test_the_workflows_page_with_none(stack: DashboardStack) -> None:
    at = stack.app("workflows")
    at.run()
    assert not at.exception and at.title[0].value == "Workflows"
    assert any("No workflows yet" in info.value for info in at.info)
    assert graphs(at) == []


def test_creating_a_workflow_from_pasted_json_lists_selects_and_draws_it(stack: DashboardStack) -> None:
    at = create(stack, "text-detection", TEXT_DETECTION.read_text())
    assert [unescaped(s.value) for s in at.success] == ["Workflow text-detection version 1 is stored."]
    table = at.dataframe[0].value
    assert list(table["Workflow"]) == ["text-detection"] and list(table["Steps"]) == [2]
    assert at.selectbox(key="workflows_pick").value == "text-detection"
    [dot] = graphs(at)
    assert '"step:detector" -> "step:boxes" [label="predictions"];' in dot
    assert '"step:boxes" -> "output:annotated" [label="image"];' in dot

    again = stack.app("workflows", workflow_id="text-detection")  # a link to it opens it
    again.run()
    assert not again.exception and again.selectbox(key="workflows_pick").value == "text-detection"
    assert len(graphs(again)) == 1


def test_an_uploaded_file_fills_the_definition_and_its_name_the_id(stack: DashboardStack) -> None:
    text = (WORKFLOWS / "text-reading.json").read_text()
    at = stack.app("workflows")
    at.run()
    at.file_uploader(key="workflow_file").upload("Text-Reading.json", text.encode(), "application/json")
    at.run()
    assert at.text_area(key="workflow_json").value == text
    assert at.text_input(key="workflow_new_id").value == "text-reading"
    at.button(key="workflow_create").click()
    at.run()
    assert not at.exception
    assert [unescaped(s.value) for s in at.success] == ["Workflow text-reading version 1 is stored."]
    assert at.selectbox(key="workflows_pick").value == "text-reading"
    assert listed(stack) == {"text-detection", "text-reading"}


def test_invalid_json_says_where_under_the_text_area(stack: DashboardStack) -> None:
    at = create(stack, "broken", '{\n  "version": "1.0",\n  "inputs": [,]\n}')
    errors = [unescaped(e.value) for e in at.error]
    assert errors == ["Not valid JSON: Expecting value at line 3, column 14."]
    assert "broken" not in listed(stack)
    assert at.text_area(key="workflow_json").value.startswith("{")  # the text stays, to fix


@pytest.mark.parametrize(
    ("mutation", "says"),
    [
        (("type", "sluice/nope@v1"), "unsupported block types: step 'boxes' type 'sluice/nope@v1'"),
        (
            ("predictions", "$steps.ghost.predictions"),
            "step 'boxes': property 'predictions': $steps.ghost.predictions refers to a step that does not",
        ),
    ],
    ids=["unknown-block", "missing-step"],
)
def test_a_compiler_refusal_is_shown_under_the_step_it_names(
    stack: DashboardStack, mutation: tuple[str, str], says: str
) -> None:
    definition = example("text-detection")
    definition["steps"][1][mutation[0]] = mutation[1]
    at = create(stack, "refused", json.dumps(definition, indent=2))
    elements = list(in_order(at.main))
    texts = [i for i, e in enumerate(elements) if e.type == "text"]
    steps = [elements[i].value for i in texts]
    assert steps == [
        "step detector  (sluice/object_detection_model@v1)",
        f"step boxes  ({definition['steps'][1]['type']})",
    ]
    under_boxes = elements[texts[1] + 1]
    assert under_boxes.type == "error"
    assert unescaped(under_boxes.value).startswith(says)
    under_detector = elements[texts[0] + 1]
    assert under_detector.type == "text"  # no error under the step that is fine
    assert any(
        '"step:boxes" [' in dot and "#d62728" in dot.split('"step:boxes" [')[1].split("\n")[0]
        for dot in graphs(at)
    )
    assert "refused" not in listed(stack)


# --- the models page -------------------------------------------------------------------------


def test_the_models_page_lists_built_in_and_registered_models(stack: DashboardStack, tmp_path: Path) -> None:
    onnx_file = constant_model(
        tmp_path / "pets.onnx", np.array([[0.1, 0.7, 0.2]], np.float32), ("N", 3, 64, 64)
    )
    stack.cli(
        "models", "register", "--model-id", "acme/pets", "--file", str(onnx_file),
        "--task", "classification", "--class-names", "cat,dog,bird", "--input-size", "64x64",
    )  # fmt: skip
    at = stack.app("models")
    at.run()
    assert not at.exception and at.title[0].value == "Models"
    table = at.dataframe[0].value.set_index("Model")
    assert {"sluice/text-detector", "acme/pets"} <= set(table.index)
    pets = table.loc["acme/pets"]
    assert (pets["Task"], pets["Classes"], pets["Input size"]) == (
        "classification",
        "3: cat, dog, bird",
        "64x64",
    )
    assert table.loc["sluice/text-detector", "Created"] == "built-in"
    assert any("sluice models register" in code.value for code in at.code)


# --- the usage page --------------------------------------------------------------------------


def test_the_usage_page_with_no_jobs(stack: DashboardStack) -> None:
    at = stack.app("usage")
    at.run()
    assert not at.exception and at.title[0].value == "Usage"
    assert any("No jobs in this period" in info.value for info in at.info)
    assert not at.dataframe and not at.metric


def test_the_usage_page_after_a_job(stack: DashboardStack, tmp_path: Path) -> None:
    stack.stage_photos(tmp_path / "photos", "usage-photos", 2)
    stack.start_job("usage-photos", "usage-job", wait=True)
    at = stack.app("usage")
    at.run()
    assert not at.exception
    jobs = at.dataframe[0].value
    assert list(jobs["Job"]) == ["job?job_id=usage-job"]
    assert jobs["CPU hours"].iloc[0] > 0
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Jobs"] == "1" and float(metrics["Credits"]) >= 0
    assert not at.info


# --- a service that is down ------------------------------------------------------------------


@pytest.mark.parametrize("page", ["workflows", "models", "usage"])
def test_a_service_that_is_down_is_a_warning(stack: DashboardStack, page: str) -> None:
    at = stack.app(page)
    at.session_state[session.ADDRESSES] = NOWHERE
    at.run()
    assert not at.exception
    assert any("is not answering" in w.value for w in at.warning)
