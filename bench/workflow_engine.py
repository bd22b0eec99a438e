"""The two-stage text-reading workflow through the executor against its models called in a loop.

    .venv/bin/python -m bench.workflow_engine [--images N] [--batch B] [--repeats R]

Both ways do the same work on the same decoded images: text detection, one crop per box, text
recognition of every crop, then boxes and labels drawn on a copy of the image. The difference is
the workflow engine's own cost. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import supervision as sv

from bench.images import write_images
from bench.model import ROOT, decode
from sluice.models import Detector, Recognizer, load_detector, load_recognizer
from sluice.workflow import CompiledWorkflow, compile_workflow
from sluice_worker.options import WorkerOptions

WORKFLOW_FILE = ROOT / "examples" / "workflows" / "text-reading.json"


@dataclass(frozen=True)
class Result:
    """What one image gave: the boxes, their class names and confidences, the texts, the drawing."""

    xyxy: np.ndarray
    confidence: np.ndarray
    class_names: list[str]
    texts: list[str]
    annotated: np.ndarray


def _step(definition: dict[str, Any], block: str) -> dict[str, Any]:
    for step in definition["steps"]:
        if step["type"] == block:
            return dict(step)
    raise ValueError(f"{WORKFLOW_FILE.name} has no {block} step")


class BareLoop:
    """The workflow's models and drawing called by hand, with the settings the definition gives.

    Detector -> `sv.crop_image` per box -> recogniser on all crops of the batch in one call ->
    `sv.BoxAnnotator` then `sv.LabelAnnotator` (the recognised texts as labels) on a copy.
    """

    def __init__(self, definition: dict[str, Any], intra_op_threads: int | None) -> None:
        detector = _step(definition, "sluice/object_detection_model@v1")
        recognizer = _step(definition, "sluice/ocr@v1")
        labels = _step(definition, "sluice/label_visualization@v1")
        defaults = {i["name"]: i.get("default_value") for i in definition["inputs"]}
        confidence = detector.get("confidence")
        if isinstance(confidence, str) and confidence.startswith("$inputs."):
            confidence = defaults[confidence.removeprefix("$inputs.")]
        self.confidence: float | None = confidence
        self.detector: Detector = load_detector(detector["model_id"], intra_op_threads)
        self.recognizer: Recognizer = load_recognizer(recognizer["model_id"], intra_op_threads)
        # The blocks' defaults (DEFAULT palette, colour by class, thickness 2, white text at the
        # top left) and the label step's text_scale and text_padding from the definition.
        self.boxes = sv.BoxAnnotator(
            color=sv.ColorPalette.DEFAULT, thickness=2, color_lookup=sv.ColorLookup.CLASS
        )
        self.labels = sv.LabelAnnotator(
            color=sv.ColorPalette.DEFAULT,
            color_lookup=sv.ColorLookup.CLASS,
            text_color=sv.Color.WHITE,
            text_scale=float(labels.get("text_scale", 1.0)),
            text_thickness=1,
            text_padding=int(labels.get("text_padding", 10)),
            text_position=sv.Position.TOP_LEFT,
            border_radius=0,
        )

    def run(self, images: Sequence[np.ndarray]) -> list[Result]:
        found = self.detector.detect(images, confidence=self.confidence, iou=0.5, max_detections=300)
        crops = [
            [np.ascontiguousarray(sv.crop_image(image, box)) for box in detections.xyxy]
            for image, detections in zip(images, found, strict=True)
        ]
        read = self.recognizer.recognize([c for image_crops in crops for c in image_crops])
        results = []
        start = 0
        for image, detections, image_crops in zip(images, found, crops, strict=True):
            texts = [text for text, _ in read[start : start + len(image_crops)]]
            start += len(image_crops)
            drawn = self.boxes.annotate(image.copy(), detections)
            drawn = self.labels.annotate(drawn, detections, labels=texts)
            results.append(_result(detections, texts, drawn))
        return results


def _result(detections: sv.Detections, texts: list[str], annotated: np.ndarray) -> Result:
    names = detections.data.get("class_name")
    confidence = detections.confidence
    return Result(
        xyxy=detections.xyxy,
        confidence=np.zeros(0) if confidence is None else confidence,
        class_names=[] if names is None else [str(n) for n in names],
        texts=texts,
        annotated=annotated,
    )


class Executor:
    """The compiled workflow; `run` returns the same `Result`s as the bare loop's."""

    def __init__(self, definition: str, intra_op_threads: int | None) -> None:
        self.workflow: CompiledWorkflow = compile_workflow(definition, intra_op_threads=intra_op_threads)

    def run(self, images: Sequence[np.ndarray]) -> list[Result]:
        outputs = self.workflow.run(images)
        return [_result(out["predictions"], list(out["texts"]), out["annotated"]) for out in outputs]


Way = Callable[[Sequence[np.ndarray]], list[Result]]


def run_all(way: Way, images: list[np.ndarray], batch: int) -> tuple[float, list[Result]]:
    """Seconds to run every image through `way`, `batch` images per call; and the results."""
    results: list[Result] = []
    start = time.perf_counter()
    for first in range(0, len(images), batch):
        results.extend(way(images[first : first + batch]))
    return time.perf_counter() - start, results


def timed_pass(
    ways: Sequence[Way], images: list[np.ndarray], batch: int
) -> tuple[list[list[float]], list[list[Result]]]:
    """Every image through every way, `batch` images per call; per way, each call's seconds and
    the results.

    The ways take turns call by call (the first way first on even chunks, the last first on odd
    ones), so that a busy moment on a shared machine, or a warm cache, favours none of them, and
    the calls of two ways on the same images can be compared pair by pair.
    """
    seconds: list[list[float]] = [[] for _ in ways]
    results: list[list[Result]] = [[] for _ in ways]
    for chunk, first in enumerate(range(0, len(images), batch)):
        part = images[first : first + batch]
        order = list(range(len(ways)))
        for index in order if chunk % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            found = ways[index](part)
            seconds[index].append(time.perf_counter() - start)
            results[index].extend(found)
    return seconds, results


def check_same(expected: list[Result], got: list[Result], batch: int) -> None:
    """Raise AssertionError unless `got` has the boxes, texts and drawn pixels of `expected`.

    An explicit raise rather than `assert`, so that `python -O` still checks.
    """
    problems = [] if len(expected) == len(got) else [f"{len(got)} results for {len(expected)} images"]
    for index, (a, b) in enumerate(zip(expected, got, strict=False)):
        if not (np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.confidence, b.confidence)):
            problems.append(f"image {index}: the boxes differ")
        elif a.class_names != b.class_names:
            problems.append(f"image {index}: the class names differ")
        elif a.texts != b.texts:
            problems.append(f"image {index}: the texts differ: {a.texts} != {b.texts}")
        elif not np.array_equal(a.annotated, b.annotated):
            problems.append(f"image {index}: the annotated images differ")
    if problems:
        raise AssertionError(f"batch {batch}: " + "; ".join(problems[:5]))


@dataclass(frozen=True)
class Timing:
    way: str
    batch: int
    images: int
    runs: list[float]

    @property
    def seconds(self) -> float:
        return statistics.median(self.runs)

    @property
    def rate(self) -> float:
        return self.images / self.seconds


def table(timings: list[Timing]) -> str:
    """Aligned text: way, batch, images, seconds, images/s, ratio to the bare loop of that batch."""
    bare = {t.batch: t.rate for t in timings if t.way.startswith("bare")}
    header = ("way", "batch", "images", "seconds", "images/s", "vs bare", "note")
    cells = [header]
    for t in timings:
        spread = f"median of {len(t.runs)} ({min(t.runs):.2f}-{max(t.runs):.2f} s)"
        cells.append(
            (
                t.way,
                str(t.batch),
                str(t.images),
                f"{t.seconds:.2f}",
                f"{t.rate:.2f}",
                f"{t.rate / bare[t.batch]:.2f}x",
                spread,
            )
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    right = {1, 2, 3, 4, 5}
    lines = []
    for index, line in enumerate(cells):
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.workflow_engine", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--images", type=int, default=60, help="how many images (default 60)")
    parser.add_argument(
        "--batch",
        type=int,
        default=WorkerOptions().batch_size,
        help="images per call in the batched rows (default: the worker's, 8)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per way; the median counts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated images")
    return parser


def load_images(count: int, seed: int) -> list[np.ndarray]:
    """`count` generated JPEGs, decoded (the files are removed again)."""
    folder = Path(tempfile.mkdtemp(prefix="sluice-bench-engine-", dir="/tmp"))
    try:
        return [decode(path.read_bytes()) for path in write_images(folder, count, seed)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.images < 1 or args.batch < 1 or args.repeats < 1:
        print("--images, --batch and --repeats must be at least 1", file=sys.stderr)
        return 2
    threads = WorkerOptions().ort_threads
    text = WORKFLOW_FILE.read_text()
    images = load_images(args.images, args.seed)
    bare = BareLoop(json.loads(text), threads)
    engine = Executor(text, threads)
    batches = [1] if args.batch == 1 else [1, args.batch]
    print(
        f"{len(images)} images (about 640x480, decoded up front); workflow {WORKFLOW_FILE.name}; "
        f"{os.cpu_count()} CPUs; onnxruntime {ort.__version__}, "
        f"{'ORT default' if threads is None else threads} threads"
    )

    # The untimed pass: the bare loop over every image at each batch size (so every input shape
    # the timed runs will meet has been through the shared ORT sessions), and the executor on the
    # first batch. Its results are the reference every timed run of both ways is checked against.
    expected: dict[int, list[Result]] = {}
    for batch in batches:
        warm_s, expected[batch] = run_all(bare.run, images, batch)
        check_same(expected[batch][:batch], engine.run(images[:batch]), batch)
        if batch == 1:
            boxes = [len(r.texts) for r in expected[batch]]
            read = sum(1 for r in expected[batch] for t in r.texts if t)
            print(
                f"{sum(boxes)} text boxes (per image: median {statistics.median(boxes):g}, "
                f"max {max(boxes)}; {sum(1 for b in boxes if b == 0)} images with none), "
                f"{read} read as non-empty text; untimed warm pass {warm_s:.1f} s (bare, batch 1)"
            )

    timings: list[Timing] = []
    paired: dict[int, float] = {}
    for batch in batches:
        ways = [Timing("bare loop", batch, len(images), []), Timing("executor", batch, len(images), [])]
        sizes = [len(images[first : first + batch]) for first in range(0, len(images), batch)]
        differences: list[float] = []  # executor - bare per image, call by call
        for _ in range(args.repeats):
            calls, results = timed_pass((bare.run, engine.run), images, batch)
            for timing, way_calls, way_results in zip(ways, calls, results, strict=True):
                check_same(expected[batch], way_results, batch)
                timing.runs.append(sum(way_calls))
            differences.extend((e - b) / size for b, e, size in zip(calls[0], calls[1], sizes, strict=True))
            print(".", end="", flush=True)
        timings.extend(ways)
        paired[batch] = statistics.median(differences)
    print()
    print(
        "checked: every run of both ways found the same boxes, read the same texts and drew the "
        "same pixels on every image"
    )
    print()
    print(table(timings))
    print()
    pairs = list(zip(timings[::2], timings[1::2], strict=True))  # (bare, executor) per batch size
    overhead = [
        f"{1000 * (engine_t.seconds - bare_t.seconds) / len(images):.1f} ms per image (batch {bare_t.batch})"
        for bare_t, engine_t in pairs
    ]
    print(f"engine overhead: {', '.join(overhead)}")
    medians = [f"{1000 * ms:.1f} ms (batch {batch})" for batch, ms in paired.items()]
    print(f"paired, call by call on the same images: median {', '.join(medians)} per image")
    work = [f"{1000 * t.seconds / t.images:.1f} ms (batch {t.batch})" for t in timings[::2]]
    print(f"bare loop per image: {', '.join(work)}")
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"bench took {time.perf_counter() - started:.0f} s")
    sys.exit(code)
