"""The spine end to end: the CLI against `sluice up`, with real NATS, Postgres and models.

One local stack serves the whole module; the tests run in order, as a user would.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.images import photographs
from tests.local_stack import local_stack, sluice
from tests.model_fixtures import constant_yolov8_model, yolov8_output

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "workflows" / "text-reading.json"
DETECTION_ONLY = ROOT / "examples" / "workflows" / "text-detection.json"
BAD = {"corrupt-0.jpg", "corrupt-1.jpg", "empty.jpg", "not-really.jpg"}
# Enough for several tasks and for the scheduler kill to land mid-job. The text detector scales
# every image to 960 pixels, so each costs about the same whatever its size, and two jobs run
# over them all: the count is what this module's time goes on.
IMAGE_COUNT = 48


@pytest.fixture(scope="module")
def state() -> Iterator[Path]:
    yield from local_stack("sluice-e2e-")


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """IMAGE_COUNT images: real photographs and crops of them, plus corrupt, empty and fake ones."""
    folder = tmp_path_factory.mktemp("images")
    photos = photographs()
    good = IMAGE_COUNT - len(BAD)
    for i in range(good):
        photo = photos[i % len(photos)]
        if i >= len(photos):
            h, w = photo.shape[:2]
            y, x = (i * 37) % (h // 2), (i * 53) % (w // 2)
            photo = photo[y : y + h // 2, x : x + w // 2]
        sub = folder / ("nested" if i % 10 == 0 else "")
        sub.mkdir(exist_ok=True)
        cv2.imwrite(str(sub / f"img-{i:04d}.jpg"), photo)
    jpeg = (folder / "img-0001.jpg").read_bytes()
    (folder / "corrupt-0.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (folder / "corrupt-1.jpg").write_bytes(np.random.default_rng(0).bytes(5000))
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "not-really.jpg").write_text("this is a text file, not a picture\n")
    (folder / "notes.txt").write_text("not staged")
    return folder


def test_stack_is_up(state: Path) -> None:
    out = sluice(state, "status").stdout
    for part in ("nats", "postgres", "staging", "scheduler", "worker", "exporter"):
        assert part in out


def test_stage_images(state: Path, images_dir: Path) -> None:
    out = sluice(
        state,
        "data-staging",
        "create-batch-of-images",
        "--images-dir",
        str(images_dir),
        "--batch-id",
        "photos",
    ).stdout
    assert "skipped (not an image): notes.txt" in out
    assert f"{IMAGE_COUNT} uploaded" in out
    again = sluice(
        state,
        "data-staging",
        "create-batch-of-images",
        "--images-dir",
        str(images_dir),
        "--batch-id",
        "photos",
    ).stdout
    assert "0 uploaded" in again and f"{IMAGE_COUNT} already staged" in again
    details = sluice(state, "data-staging", "show-batch-details", "--batch-id", "photos").stdout
    assert re.search(rf"objects\s+{IMAGE_COUNT}\b", details), details


def test_bad_input_is_one_clear_line(state: Path) -> None:
    cases = [
        (["data-staging", "show-batch-details", "--batch-id", "Bad/Id"], "invalid batch id"),
        (
            [
                "batch-processing",
                "process-images-with-workflow",
                "--workflow-id",
                "nope",
                "--batch-id",
                "photos",
            ],
            "workflow 'nope' not found",
        ),
        (
            [
                "batch-processing",
                "process-images-with-workflow",
                "--workflow-id",
                "text",
                "--batch-id",
                "missing",
            ],
            "batch 'missing' not found",
        ),
    ]
    sluice(state, "workflows", "create", "--workflow-id", "text", "--file", str(WORKFLOW))
    for args, expected in cases:
        result = sluice(state, *args, check=False)
        assert result.returncode != 0
        assert expected in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_gpu_job_waits_for_a_gpu_worker(state: Path) -> None:
    sluice(
        state,
        "batch-processing",
        "process-images-with-workflow",
        "--workflow-id",
        "text",
        "--batch-id",
        "photos",
        "--machine-type",
        "gpu",
        "--job-id",
        "on-gpu",
    )
    for _ in range(40):  # the scheduler says so once heartbeats have had time to arrive
        details = sluice(state, "batch-processing", "show-job-details", "--job-id", "on-gpu").stdout
        if "no gpu worker is running" in details:
            break
        time.sleep(0.5)
    assert "queued" in details
    assert "no gpu worker is running" in details


def test_job_runs_and_exports_one_record_per_image(state: Path, tmp_path: Path) -> None:
    """The whole job, with --wait riding out a kill -9 of the scheduler on the way."""
    command = [sys.executable, "-m", "sluice.cli.main", "batch-processing", "process-images-with-workflow"]
    command += ["--workflow-id", "text", "--batch-id", "photos", "--job-id", "first"]
    command += ["--save-image-outputs", "--wait", "--state-dir", str(state)]
    waiting = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(120):  # until the first images are done (the job may not exist yet)
        details = sluice(
            state, "batch-processing", "show-job-details", "--job-id", "first", check=False
        ).stdout
        if re.search(r"processing\s+running\s+\d+/\d+\s+[1-9]", details):
            break
        time.sleep(0.5)
    scheduler = json.loads((state / "stack.json").read_text())["parts"]["scheduler"]["pid"]
    os.kill(scheduler, signal.SIGKILL)
    out, err = waiting.communicate(timeout=600)
    assert waiting.returncode == 0, out + err
    # Four images cannot be read: the job completes with errors, and says how many.
    assert f"job first completed with errors: 4 of {IMAGE_COUNT} images failed" in out, out
    assert err.count("the scheduler is not answering") == 1, err
    assert "Traceback" not in err
    details = sluice(state, "batch-processing", "show-job-details", "--job-id", "first").stdout
    assert "completed with errors" in details and "first-export" in details
    target = tmp_path / "export"
    sluice(state, "data-staging", "export-batch", "--batch-id", "first-export", "--target-dir", str(target))
    records = [json.loads(line) for line in (target / "results.jsonl").read_text().splitlines()]
    names = [r["image"] for r in records]
    assert len(names) == IMAGE_COUNT == len(set(names))
    errors = {r["image"]: r["error"] for r in records if r["status"] == "error"}
    assert set(errors) == BAD
    assert all(errors.values())
    found = [r for r in records if r["status"] == "ok" and r["outputs"]["predictions"]["predictions"]]
    assert found, "the text detector found nothing in any photograph"
    for record in found:  # the recognised text of each detection, in detection order
        assert len(record["outputs"]["texts"]) == len(record["outputs"]["predictions"]["predictions"])
    page = next(r for r in records if r["image"] == "img-0005.jpg")  # page.png, a page of text
    assert any("segmentation" in text.lower() for text in page["outputs"]["texts"]), page["outputs"]
    annotated = list((target / "images").rglob("*.jpg"))
    assert len(annotated) == IMAGE_COUNT - len(BAD)
    again = sluice(
        state, "data-staging", "export-batch", "--batch-id", "first-export", "--target-dir", str(target)
    ).stdout
    assert "0 downloaded" in again


def test_csv_export_with_workflow_parameters(state: Path, tmp_path: Path) -> None:
    sluice(state, "workflows", "create", "--workflow-id", "boxes", "--file", str(DETECTION_ONLY))
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"confidence": 0.6}))
    sluice(
        state,
        "batch-processing",
        "process-images-with-workflow",
        "--workflow-id",
        "boxes",
        "--batch-id",
        "photos",
        "--job-id",
        "as-csv",
        "--aggregation-format",
        "csv",
        "--workflow-params",
        str(params),
        "--wait",
    )
    target = tmp_path / "export"
    sluice(state, "data-staging", "export-batch", "--batch-id", "as-csv-export", "--target-dir", str(target))
    with (target / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == IMAGE_COUNT
    assert {r["image"] for r in rows if r["status"] == "error"} == BAD
    confidences = [
        p["confidence"]
        for r in rows
        if r["status"] == "ok"
        for p in json.loads(r["predictions"])["predictions"]
    ]
    assert confidences and min(confidences) >= 0.6


def test_registered_model_runs_in_a_job(state: Path, tmp_path: Path) -> None:
    """A user's own YOLOv8 export: registered, stored, loaded by the worker from the store."""
    boxes = [(100.0, 120.0, 80.0, 60.0), (400.0, 300.0, 120.0, 90.0)]
    model = constant_yolov8_model(
        tmp_path / "cars.onnx", yolov8_output(boxes, [0, 1], [0.9, 0.8], num_classes=2, extra_anchors=3)
    )
    sluice(
        state,
        "models",
        "register",
        "--model-id",
        "acme/cars",
        "--file",
        str(model),
        "--task",
        "object-detection",
        "--class-names",
        "car,person",
        "--input-size",
        "640x640",
    )
    assert "acme/cars" in sluice(state, "models", "list").stdout
    definition = json.loads(DETECTION_ONLY.read_text())
    definition["steps"][0]["model_id"] = "acme/cars"
    workflow = tmp_path / "cars.json"
    workflow.write_text(json.dumps(definition))
    sluice(state, "workflows", "create", "--workflow-id", "cars", "--file", str(workflow))
    images = tmp_path / "square"
    images.mkdir()
    for i in range(3):
        cv2.imwrite(str(images / f"s{i}.png"), np.full((640, 640, 3), 40 * i, np.uint8))
    sluice(
        state, "data-staging", "create-batch-of-images", "--images-dir", str(images), "--batch-id", "square"
    )
    sluice(
        state,
        "batch-processing",
        "process-images-with-workflow",
        "--workflow-id",
        "cars",
        "--batch-id",
        "square",
        "--job-id",
        "cars",
        "--wait",
    )
    target = tmp_path / "export"
    sluice(state, "data-staging", "export-batch", "--batch-id", "cars-export", "--target-dir", str(target))
    records = [json.loads(line) for line in (target / "results.jsonl").read_text().splitlines()]
    assert len(records) == 3
    for record in records:
        found = sorted(
            (p["class"], p["x"], p["y"], p["width"], p["height"])
            for p in record["outputs"]["predictions"]["predictions"]
        )
        assert found == [("car", 100.0, 120.0, 80.0, 60.0), ("person", 400.0, 300.0, 120.0, 90.0)]
    definition["steps"][0]["model_id"] = "acme/missing"
    workflow.write_text(json.dumps(definition))
    refused = sluice(
        state, "workflows", "create", "--workflow-id", "broken", "--file", str(workflow), check=False
    )
    assert refused.returncode != 0
    assert "detector" in refused.stderr and "model_id" in refused.stderr and "acme/missing" in refused.stderr


def test_down_and_up_keeps_everything(state: Path) -> None:
    sluice(state, "down")
    assert "down" in sluice(state, "status").stdout
    sluice(state, "up", "--no-dashboard")
    assert "photos" in sluice(state, "data-staging", "list-batches").stdout
    assert "text" in sluice(state, "workflows", "list").stdout
    jobs = sluice(state, "batch-processing", "list-jobs").stdout
    assert "first" in jobs and "on-gpu" in jobs
    details = sluice(state, "batch-processing", "show-job-details", "--job-id", "first").stdout
    assert "completed" in details
