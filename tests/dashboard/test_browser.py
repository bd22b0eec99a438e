"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against `sluice up`.

One user's afternoon, in order: sign in, upload a folder of photos from the browser's folder
picker, start a job from the New job form, watch it reach the end without reloading, look at the
gallery, download the export; then start a longer job, abort it from its page, restart it and see
it complete. Screenshots of a running job, the gallery and the jobs list are written to
docs/screenshots/ (or $SLUICE_SCREENSHOTS_DIR); a failing step leaves failure-<step>.png there.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright

from tests.browser import launch, screenshots_dir
from tests.dashboard_stack import DashboardStack
from tests.images import photographs

pytestmark = pytest.mark.e2e

SMALL_BATCH, SMALL_JOB, SMALL_COUNT = "browser-photos", "browser-small", 6
LONG_BATCH, LONG_JOB, LONG_COUNT = "browser-long", "browser-long", 24  # 12 tasks of 2, one at a time
SHORT_S = 20_000  # ms: a page or a rerun appearing
JOB_S = 120_000  # ms: a job running to its end on a busy 2-core machine


def write_photos(folder: Path, count: int, side: int) -> list[str]:
    """`count` photographs shrunk to `side` pixels as JPEGs in `folder`; their names."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = photographs()
    names = []
    for i in range(count):
        photo = photos[i % len(photos)]
        scale = side / max(photo.shape[:2])
        small = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)))
        name = f"photo-{i:03d}.jpg"
        cv2.imwrite(str(folder / name), small)
        names.append(name)
    return names


@contextmanager
def step(page: Page, name: str) -> Iterator[None]:
    """A named part of the flow, timed (printed); when it fails, the page as it was is kept as
    failure-<name>.png."""
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        try:
            page.screenshot(path=str(screenshots_dir() / f"failure-{name}.png"), full_page=True)
        except Exception as error:  # the browser itself may be what failed
            print(f"no failure screenshot for {name}: {error}")
        raise
    finally:
        print(f"step {name}: {time.perf_counter() - started:.1f} s")


def sign_in(page: Page, api_key: str) -> None:
    page.get_by_label("API key").fill(api_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_label("API key")).to_have_count(0, timeout=SHORT_S)


def open_in_sidebar(page: Page, title: str) -> None:
    """Go to a page the way a user does, through the sidebar (the session, and so the sign-in,
    stays: a reload would start a new one)."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=SHORT_S)


def settle(page: Page) -> None:
    """Wait for the rerun a widget change asked for to finish: a value typed or clicked while the
    script still runs can be drawn over by that run, and a click sent before a typed value is
    taken starts the job without it."""
    idle = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
    expect(idle).to_have_count(1, timeout=SHORT_S)


def widget(page: Page, test_id: str, label: str) -> Locator:
    """The Streamlit widget of kind `test_id` (e.g. stRadio) whose label is `label`."""
    return page.get_by_test_id(test_id).filter(has=page.get_by_text(label, exact=True)).first


def type_into(page: Page, label: str, text: str) -> None:
    """Fill a text or number input and leave it, which is when Streamlit takes the value.

    A rerun that an earlier click asked for may not have started when `settle` looks, and when it
    ends it can draw the field back empty over what was typed; the user would type again, and so
    does this (three tries), then the value must be there."""
    field = page.get_by_label(label, exact=True)
    for _ in range(3):
        settle(page)
        field.fill(text)
        field.press("Tab")
        page.wait_for_timeout(300)  # let the rerun the change asked for begin
        settle(page)
        if field.input_value() == text:
            break
    expect(field).to_have_value(text)


def click_option(page: Page, test_id: str, label: str, option: str) -> None:
    """Click `option` of the radio or checkbox widget labelled `label`."""
    settle(page)
    widget(page, test_id, label).get_by_text(option, exact=True).click()
    settle(page)


def choose(page: Page, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label`."""
    settle(page)
    box = page.get_by_role("combobox", name=label, exact=True)
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)
    expect(box).to_have_value(option)


def state_metric(page: Page) -> Locator:
    return page.get_by_test_id("stMetric").filter(has=page.get_by_text("State", exact=True)).first


def start_job_from_form(page: Page, batch_id: str, job_id: str, max_parallel: int = 0) -> None:
    """Fill the New job form, start the job and follow its "Open job" link."""
    open_in_sidebar(page, "New job")
    click_option(page, "stRadio", "Input", "images")
    choose(page, "Batch", batch_id)
    choose(page, "Workflow", "text-detection")
    save = page.get_by_role("checkbox", name="Save image outputs")
    if not save.is_checked():
        click_option(page, "stCheckbox", "Save image outputs", "Save image outputs")
    expect(save).to_be_checked()
    if max_parallel:
        type_into(page, "Max parallel tasks", str(max_parallel))
    type_into(page, "Job id (optional)", job_id)
    page.get_by_role("button", name="Start job").click()
    expect(page.get_by_test_id("stAlertContentSuccess")).to_contain_text(
        f"Job {job_id} started", timeout=SHORT_S
    )
    page.get_by_role("link", name=f"Open job {job_id}").click()
    expect(page.get_by_role("heading", name=f"Job {job_id}")).to_be_visible(timeout=SHORT_S)


def records_in_export(archive: bytes) -> list[dict[str, object]]:
    """Every record of results.jsonl inside the export's .tar.gz archives, inside the .zip."""
    records: list[dict[str, object]] = []
    with zipfile.ZipFile(io.BytesIO(archive)) as outer:
        for entry in outer.namelist():
            if not entry.endswith(".tar.gz"):
                continue
            with tarfile.open(fileobj=io.BytesIO(outer.read(entry)), mode="r:gz") as tar:
                for member in tar.getmembers():
                    if member.isfile() and Path(member.name).name == "results.jsonl":
                        data = tar.extractfile(member)
                        assert data is not None
                        records.extend(json.loads(line) for line in data.read().decode().splitlines() if line)
    return records


def test_a_user_runs_watches_aborts_and_restarts_jobs_in_the_browser(
    stack: DashboardStack, tmp_path: Path
) -> None:
    shots = screenshots_dir()
    photos = tmp_path / "photos"
    names = write_photos(photos, SMALL_COUNT, side=160)
    stack.ensure_workflow("text-detection")
    with sync_playwright() as playwright, launch(playwright) as browser:
        page = browser.new_page()
        page.set_default_timeout(SHORT_S)

        with step(page, "sign-in"):
            page.goto(stack.dashboard_url)
            sign_in(page, stack.api_key)
            expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
            open_in_sidebar(page, "Batches")

        with step(page, "upload"):
            type_into(page, "Batch id", SMALL_BATCH)
            click_option(page, "stRadio", "Kind", "images")
            uploader = widget(page, "stFileUploader", "Files to upload")
            uploader.locator("input[type=file]").set_input_files(str(photos))  # the folder picker
            expect(uploader).to_contain_text(names[-1])
            settle(page)
            page.get_by_role("button", name="Upload", exact=True).click()
            stored = page.get_by_test_id("stAlertContentSuccess").filter(has_text="stored")
            expect(stored).to_contain_text(
                f"{SMALL_COUNT} files stored, 0 already staged, 0 refused", timeout=60_000
            )
            expect(page.get_by_role("link", name=f"Open batch {SMALL_BATCH}")).to_be_visible()

        with step(page, "new-job"):
            start_job_from_form(page, SMALL_BATCH, SMALL_JOB)

        with step(page, "watch"):  # no reload from here: the page refreshes itself
            expect(state_metric(page)).to_contain_text("completed", timeout=JOB_S)
            expect(page.get_by_text(f"{SMALL_COUNT} / {SMALL_COUNT} items")).to_be_visible()

        with step(page, "gallery"):
            page.get_by_role("tab", name="Gallery").click()
            captions = page.get_by_test_id("stImageCaption")
            expect(captions).to_have_count(SMALL_COUNT, timeout=SHORT_S)
            assert sorted(captions.all_inner_texts()) == names
            images = page.get_by_role("tabpanel", name="Gallery").get_by_role("img")
            expect(images).to_have_count(SMALL_COUNT)
            page.screenshot(path=str(shots / "gallery.png"))

        with step(page, "export"):
            page.get_by_role("tab", name="Outputs").click()
            page.get_by_role("button", name="Prepare export download").click()
            download_button = page.get_by_role("button", name="Download export")
            expect(download_button).to_be_visible(timeout=60_000)
            with page.expect_download(timeout=60_000) as caught:
                download_button.click()
            download = caught.value
            assert download.suggested_filename == f"{SMALL_JOB}-export.zip"
            saved = tmp_path / download.suggested_filename
            download.save_as(saved)
            records = records_in_export(saved.read_bytes())
            assert len(records) == SMALL_COUNT, records
            assert sorted(str(r["image"]) for r in records) == names
            assert all(r["status"] == "ok" for r in records), records

        stack.stage_photos(tmp_path / "long", LONG_BATCH, LONG_COUNT, side=240)

        with step(page, "long-job"):
            start_job_from_form(page, LONG_BATCH, LONG_JOB, max_parallel=1)
            expect(state_metric(page)).to_contain_text("running", timeout=JOB_S)
            # Items done in its first tasks (one at a time): a picture of a job under way.
            under_way = page.get_by_text(re.compile(rf"^[1-9]\d* / {LONG_COUNT} items"))
            expect(under_way).to_be_visible(timeout=JOB_S)
            page.screenshot(path=str(shots / "job-running.png"))

        with step(page, "abort"):
            page.get_by_role("button", name="Abort job").click()
            page.get_by_role("button", name="Yes, abort the job").click()
            expect(state_metric(page)).to_contain_text("aborted", timeout=SHORT_S)

        with step(page, "restart"):
            restart = page.get_by_test_id("stExpander").filter(has_text="Restart with overrides")
            if not restart.get_by_role("button", name="Restart job").is_visible():
                restart.get_by_text("Restart with overrides").click()
            restart.get_by_role("button", name="Restart job").click()
            expect(page.get_by_text(f"Job {LONG_JOB} restarted")).to_be_visible()
            expect(state_metric(page)).not_to_contain_text("aborted", timeout=SHORT_S)
            expect(state_metric(page)).to_contain_text("completed", timeout=JOB_S)
            expect(page.get_by_text(f"{LONG_COUNT} / {LONG_COUNT} items")).to_be_visible()

        with step(page, "jobs"):
            open_in_sidebar(page, "Jobs")
            expect(page.get_by_test_id("stDataFrame")).to_be_visible()
            page.screenshot(path=str(shots / "jobs.png"))
    long_job = stack.job(LONG_JOB)  # what the page said, as the scheduler has it
    assert long_job.attempt == 2
    processing = long_job.stages[0]
    assert (processing.name, processing.items_done, processing.items_total) == (
        "processing",
        LONG_COUNT,
        LONG_COUNT,
    )
