"""The Jobs and Job pages (AppTest) against a real local stack: no jobs, a completed job (table
row, state, progress chart, gallery, export zip), a failed job and its reason, a running job aborted
and restarted from its page, and services that are down and come back."""

from __future__ import annotations

import io
import shutil
import time
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from sluice.v1 import scheduler_pb2, staging_pb2
from sluice_dashboard import session
from sluice_dashboard.client import Addresses
from tests.dashboard_stack import DashboardStack

DOWN = Addresses("127.0.0.1:1", "127.0.0.1:1")


def ran(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def state_metric(at: AppTest) -> str:
    return str(next(m.value for m in at.metric if m.label == "State"))


def progress_text(at: AppTest) -> str:
    return str(at.get("progress")[0].proto.text)


def table(at: AppTest) -> pd.DataFrame:
    return at.dataframe[0].value


def frame_with(at: AppTest, column: str) -> pd.DataFrame:
    """The page's first table that has `column`."""
    return next(frame.value for frame in at.dataframe if column in frame.value.columns)


def chart_data(at: AppTest) -> pd.DataFrame:
    """The data of the page's first chart (Streamlit sends it as an Arrow dataset)."""
    chart = at.get("vega_lite_chart")[0].proto
    frames = [pa.ipc.open_stream(dataset.data.data).read_pandas() for dataset in chart.datasets]
    return pd.concat(frames)


def wait_for(stack: DashboardStack, job_id: str, states: set[int], timeout_s: float) -> scheduler_pb2.Job:
    deadline = time.monotonic() + timeout_s
    while True:
        job = stack.job(job_id)
        if job.state in states or time.monotonic() > deadline:
            assert job.state in states, f"job {job_id} is {job.state} after {timeout_s} s"
            return job
        time.sleep(0.2)


def test_jobs_page_with_no_jobs(stack: DashboardStack) -> None:
    at = ran(stack.app("jobs"))
    assert at.title[0].value == "Jobs"
    assert any("No jobs yet" in info.value for info in at.info)
    assert not at.dataframe


def test_a_completed_job(stack: DashboardStack, tmp_path: Path) -> None:
    stack.stage_photos(tmp_path / "photos", "photos", 6)
    stack.ensure_workflow("text-detection")
    stack.start_job("photos", "done", "--save-image-outputs", wait=True)

    rows = table(ran(stack.app("jobs")))
    row = rows[rows["Job"] == "job?job_id=done"].iloc[0]
    assert (row["State"], row["Items"], row["Progress"], row["Failed"]) == ("completed", "6 / 6", 1.0, 0)
    assert row["Machine"] == "cpu" and row["Credits"] > 0

    at = ran(stack.app("job", job_id="done"))
    assert at.title[0].value == "Job done"
    assert state_metric(at) == "completed"
    assert progress_text(at).startswith("6 / 6 items")
    points = chart_data(at)
    assert points["value -- streamlit-generated"].max() == 6  # items done reached the batch's 6
    stages = at.dataframe[0].value
    assert list(stages["Stage"]) == ["processing", "export"] and set(stages["State"]) == {"completed"}
    captions = sorted(c for image in at.get("image") for c in image.captions)
    assert captions == [f"photo-{i:03d}.jpg" for i in range(6)]

    at.button(key="job_prepare_export").click()
    ran(at)
    assert at.get("download_button")[0].label == "Download export"
    job_id, data = at.session_state["_job_export_zip"]  # the bytes the download button serves
    assert job_id == "done"
    listed = stack.services().call(
        "staging",
        "ListBatchContent",
        staging_pb2.ListBatchContentRequest(batch_id="done-export", all_parts=True),
    )
    assert sorted(zipfile.ZipFile(io.BytesIO(data)).namelist()) == sorted(o.name for o in listed.objects)
    assert listed.objects


def test_a_failed_job(stack: DashboardStack, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    stack.stage_photos(tmp_path / "one", "one", 1)
    folder.mkdir()
    shutil.copy(tmp_path / "one" / "photo-000.jpg", folder / "photo-000.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a JPEG" * 20)  # staged, not decodable
    stack.cli("data-staging", "create-batch-of-images", "--images-dir", str(folder), "--batch-id", "broken")
    stack.cli(
        "batch-processing", "process-images-with-workflow", "--workflow-id", "text-detection",
        "--batch-id", "broken", "--job-id", "strict", "--max-image-failure-rate", "0", "--wait", check=False,
    )  # fmt: skip
    assert stack.job("strict").state == scheduler_pb2.JOB_STATE_FAILED

    at = ran(stack.app("job", job_id="strict"))
    assert state_metric(at) == "failed"
    reason = "1 of 2 images failed (50.0%), above the maximum failure rate of 0.0%"
    assert any(reason in error.value for error in at.error), [e.value for e in at.error]
    assert any(reason in code.value for code in at.code)  # the Errors tab
    at.selectbox(key="job_log_severity").select("error")
    ran(at)
    logs = frame_with(at, "Severity")
    assert set(logs["Severity"]) == {"error"} and any(reason in m for m in logs["Message"])

    # A failed job can be restarted; the scheduler refuses this one (a runtime cap it already used up).
    at.number_input(key="job_restart_runtime").set_value(0.001)
    at.button(key="job_restart").click()
    ran(at)
    assert any("runtime cap is 0.001 s" in error.value for error in at.error), [e.value for e in at.error]
    assert stack.job("strict").attempt == 1

    jobs = stack.app("jobs")
    ran(jobs)
    jobs.multiselect(key="jobs_state").select("failed")
    ran(jobs)
    assert list(table(jobs)["Job"]) == ["job?job_id=strict"]
    assert list(table(jobs)["State"]) == ["failed"]


def test_abort_and_restart_a_running_job(stack: DashboardStack, tmp_path: Path) -> None:
    stack.stage_photos(tmp_path / "many", "many", 12)
    stack.start_job("many", "long", "--max-parallel-tasks", "1")
    wait_for(stack, "long", {scheduler_pb2.JOB_STATE_RUNNING}, 30)

    rows = table(ran(stack.app("jobs")))
    assert rows[rows["Job"] == "job?job_id=long"].iloc[0]["State"] == "running"

    at = ran(stack.app("job", job_id="long"))
    assert state_metric(at) == "running"
    at.button(key="job_abort").click()
    ran(at)
    assert stack.job("long").state == scheduler_pb2.JOB_STATE_RUNNING  # the first click only asks
    at.button(key="job_abort_confirm").click()
    ran(at)
    assert stack.job("long").state == scheduler_pb2.JOB_STATE_ABORTED
    assert any("Job long aborted" in s.value for s in at.success)
    assert state_metric(at) == "aborted"
    assert not [b for b in at.button if b.key == "job_abort"]
    assert "interrupted" in set(frame_with(at, "Deliveries")["State"])  # the Tasks tab

    at.number_input(key="job_restart_parallel").set_value(8)
    at.button(key="job_restart").click()
    ran(at)
    assert any("restarted (attempt 2)" in s.value for s in at.success), [s.value for s in at.success]
    job = wait_for(stack, "long", {scheduler_pb2.JOB_STATE_COMPLETED}, 60)
    assert (job.attempt, job.max_parallel_tasks) == (2, 8)
    ran(at)
    assert state_metric(at) == "completed"
    assert progress_text(at).startswith("12 / 12 items")


@pytest.mark.parametrize(("page", "query"), [("jobs", {}), ("job", {"job_id": "done"})])
def test_a_service_that_is_down(stack: DashboardStack, page: str, query: dict[str, str]) -> None:
    at = stack.app(page, **query)
    at.session_state[session.ADDRESSES] = DOWN
    ran(at)
    assert any("is not answering" in warning.value for warning in at.warning)
    at.session_state[session.ADDRESSES] = stack.addresses
    ran(at)
    assert not at.warning
    if page == "jobs":
        assert "job?job_id=done" in list(table(at)["Job"])
    else:
        assert state_metric(at) == "completed"


@pytest.mark.parametrize(
    ("job_id", "said"),
    [("", "No job chosen"), ("Not An Id", "invalid job id"), ("nobody", "There is no job nobody")],
)
def test_a_job_page_without_a_known_job(stack: DashboardStack, job_id: str, said: str) -> None:
    at = ran(stack.app("job", **({"job_id": job_id} if job_id else {})))
    assert any(said in error.value for error in at.error), [e.value for e in at.error]
    assert not at.metric
