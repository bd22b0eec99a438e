"""The dashboard's data pages against a real local stack: Batches (with a folder uploaded through
the page's file uploader, resumable), Batch (thumbnails and table), and New job (choices from
the stack, generated parameter fields, mistakes explained next to their field, an estimate and
a started job), and each of them with the services down."""

from __future__ import annotations

import time

import cv2
import pytest
from streamlit.testing.v1 import AppTest

from sluice.v1 import scheduler_pb2, staging_pb2
from sluice_dashboard import browser_upload, job_form, session
from sluice_dashboard.client import Addresses
from tests.dashboard_stack import DashboardStack
from tests.images import photographs

PARAM_KEY = "job_param_text-detection_confidence"


def _jpegs(count: int, side: int = 160) -> list[bytes]:
    photos = photographs()
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        scale = side / max(photo.shape[:2])
        small = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)))
        out.append(cv2.imencode(".jpg", small)[1].tobytes())
    return out


def _texts(elements: object) -> list[str]:
    return [str(e.value) for e in elements]  # type: ignore[attr-defined]


def _names(stack: DashboardStack, batch_id: str) -> list[str]:
    page = stack.services().call(
        "staging", "ListBatchContent", staging_pb2.ListBatchContentRequest(batch_id=batch_id, all_parts=True)
    )
    return sorted(o.name for o in page.objects)


def _upload(stack: DashboardStack, batch_id: str, files: list[tuple[str, bytes, str]]) -> AppTest:
    at = stack.app("batches").run()
    at.text_input(key="upload_batch_id").input(batch_id)
    at.radio(key="upload_kind").set_value("images")
    at.file_uploader(key="upload_files").set_value(files)
    at.button(key="upload_go").click()
    return at.run()


# ---- pure parts: no stack needed --------------------------------------------------------


def test_folder_names_keep_the_path_below_the_chosen_folder() -> None:
    assert browser_upload.batch_names(["pics/a.jpg", "pics/sub/b.jpg"]) == ["a.jpg", "sub/b.jpg"]
    assert browser_upload.batch_names(["/pics/a.jpg", "./pics/b.jpg"]) == ["a.jpg", "b.jpg"]
    assert browser_upload.batch_names(["a.jpg", "b.jpg"]) == ["a.jpg", "b.jpg"]
    assert browser_upload.batch_names(["pics\\a.jpg", "pics\\b.jpg"]) == ["a.jpg", "b.jpg"]


def test_form_explains_each_wrong_field() -> None:
    params = job_form.parameter_fields(
        '{"version": "1.0", "inputs": [{"type": "WorkflowImage", "name": "image"},'
        '{"type": "WorkflowParameter", "name": "classes", "kind": ["list_of_values"], "default_value": []},'
        '{"type": "WorkflowParameter", "name": "threshold", "kind": ["float_zero_to_one"],'
        ' "default_value": 0.5}], "steps": [], "outputs": []}'
    )
    assert [(p.name, p.widget) for p in params] == [("classes", "json"), ("threshold", "slider01")]
    values = job_form.JobFormValues(
        batch_id="b1",
        workflow_id="w1",
        max_image_failure_rate="2",
        max_runtime_seconds="soon",
        parameters={"classes": "[1, 2", "threshold": 0.5},
    )
    result = job_form.build_request(values, params)
    assert result.request is None
    assert "between 0 and 1" in result.errors[job_form.FAILURE_RATE]
    assert "not a number" in result.errors[job_form.RUNTIME]
    assert "not valid JSON" in result.errors["param:classes"]
    values.parameters["classes"] = '{"a": 1}'
    assert "expects list_of_values" in job_form.build_request(values, params).errors["param:classes"]
    values.max_image_failure_rate, values.max_runtime_seconds = "0.1", ""
    values.parameters = {"classes": '["car"]', "threshold": 0.5}
    request = job_form.build_request(values, params).request
    assert request is not None and request.max_image_failure_rate == pytest.approx(0.1)
    assert request.workflow_params_json == '{"classes": ["car"]}'  # only what differs from defaults
    assert job_form.field_for_message("batch 'x' not found", params) == job_form.BATCH
    assert job_form.field_for_message("parameter 'classes': expects ...", params) == "param:classes"


# ---- pages against the stack ------------------------------------------------------------


def test_batches_page_with_no_batches(stack: DashboardStack) -> None:
    at = stack.app("batches").run()
    assert not at.exception
    assert at.title[0].value == "Batches"
    assert any("No batches yet" in t for t in _texts(at.info))
    assert at.file_uploader(key="upload_files").accept_directory


def test_upload_a_folder_then_again_then_with_refusals(stack: DashboardStack) -> None:
    photos = _jpegs(4)
    files = [(f"trip/photo-{i}.jpg", data, "image/jpeg") for i, data in enumerate(photos)]
    at = _upload(stack, "uploaded", files)
    assert not at.exception
    stored = "4 files stored, 0 already staged, 0 refused"
    assert any(stored in t for t in _texts(at.success)), _texts(at.error)
    assert _names(stack, "uploaded") == [f"photo-{i}.jpg" for i in range(4)]
    at = _upload(stack, "uploaded", files)  # resumable: nothing sent twice
    assert any("0 files stored, 4 already staged" in t for t in _texts(at.success))
    mixed = [
        ("set/a.jpg", photos[0], "image/jpeg"),
        ("set/b.jpg", photos[1], "image/jpeg"),
        ("set/notes.txt", b"hello", "text/plain"),
        ("set/.sluice/c.jpg", photos[2], "image/jpeg"),
    ]
    at = _upload(stack, "mixed", mixed)
    assert any("2 files stored, 0 already staged, 2 refused" in t for t in _texts(at.success))
    refused = at.dataframe[-1].value
    reasons = dict(zip(refused["File"], refused["Reason"], strict=True))
    assert "not an image" in reasons["notes.txt"] and "reserved" in reasons[".sluice/c.jpg"]
    assert _names(stack, "mixed") == ["a.jpg", "b.jpg"]
    table = stack.app("batches").run().dataframe[0].value
    assert {"batch?batch_id=uploaded", "batch?batch_id=mixed"} <= set(table["Batch"])
    columns = ["Batch", "Type", "Files", "Size", "Parts", "Created", "Expires", "Source job"]
    assert list(table.columns) == columns


def test_batch_page_thumbnails_and_table(stack: DashboardStack) -> None:
    at = stack.app("batch", batch_id="uploaded").run()
    assert not at.exception
    assert at.title[0].value == "Batch uploaded"
    captions = [c for image in at.image for c in image.captions]
    assert captions == [f"photo-{i}.jpg" for i in range(4)]
    at.radio(key="batch_view").set_value("Table").run()
    table = at.dataframe[0].value
    assert list(table["Name"]) == [f"photo-{i}.jpg" for i in range(4)]
    assert set(table["Content type"]) == {"image/jpeg"}


def test_unknown_or_invalid_batch_id(stack: DashboardStack) -> None:
    at = stack.app("batch", batch_id="no-such-batch").run()
    assert not at.exception
    assert any("no batch `no-such-batch`" in t for t in _texts(at.error))
    at = stack.app("batch", batch_id="Bad Id!").run()
    assert any("not a batch id" in t for t in _texts(at.error))


def _new_job(stack: DashboardStack) -> AppTest:
    at = stack.app("new_job").run()
    assert not at.exception
    return at


def test_new_job_choices_checks_estimate_and_start(stack: DashboardStack) -> None:
    stack.ensure_workflow("text-detection")
    at = _new_job(stack)
    assert {"uploaded", "mixed"} <= set(at.selectbox(key="job_batch").options)
    assert "text-detection" in at.selectbox(key="job_workflow").options
    assert at.number_input(key=PARAM_KEY).value == pytest.approx(0.4)

    at.selectbox(key="job_batch").set_value("mixed")
    at.text_input(key="job_failure_rate").input("2")
    at.button(key="job_start").click().run()
    assert not at.exception
    assert any("between 0 and 1" in t for t in _texts(at.error))
    assert not at.success
    jobs = stack.services().call("scheduler", "ListJobs", scheduler_pb2.ListJobsRequest(page_size=10)).jobs
    assert not jobs

    at.text_input(key="job_failure_rate").input("")
    at.text_input(key="job_batch_typed").input("no-such-batch")
    at.button(key="job_start").click().run()
    errors = _texts(at.error)
    assert any(t.startswith("The scheduler refused") and "no-such-batch" in t for t in errors), errors
    assert sum("no-such-batch" in t for t in errors) == 2  # under the form and under Batch

    at.text_input(key="job_batch_typed").input("")
    started = time.monotonic()
    at.button(key="job_estimate").click().run(timeout=300)
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Sample"].endswith("of 2 images") and "Credits" in metrics, (metrics, _texts(at.error))
    print(f"estimate took {time.monotonic() - started:.1f} s")

    at.number_input(key=PARAM_KEY).set_value(0.3)
    at.text_input(key="job_id").input("dash-data-job")
    at.button(key="job_start").click().run()
    assert any("Job dash-data-job started" in t for t in _texts(at.success)), _texts(at.error)
    job = stack.job("dash-data-job")
    assert job.batch_id == "mixed" and job.workflow_id == "text-detection"
    assert '"confidence": 0.3' in job.workflow_params_json


@pytest.mark.parametrize("page", ["batches", "batch", "new_job"])
def test_services_down(stack: DashboardStack, page: str) -> None:
    at = stack.app(page, batch_id="uploaded") if page == "batch" else stack.app(page)
    at.session_state[session.ADDRESSES] = Addresses("127.0.0.1:9", "127.0.0.1:9")
    at.run()
    assert not at.exception
    assert any("not answering" in t for t in _texts(at.warning))
