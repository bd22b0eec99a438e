"""Classifier and recogniser: crafted ONNX models with known outputs, the real PP-OCR recogniser and
text-angle classifier on a printed page, the real orientation classifier on rotated photographs,
and the forward pass going through the backend."""

from __future__ import annotations

from collections.abc import Iterator
from difflib import SequenceMatcher
from pathlib import Path

import cv2
import numpy as np
import pytest

from sluice.models import (
    ORIENTATION,
    TEXT_ANGLE,
    TEXT_DETECTOR,
    TEXT_RECOGNIZER,
    ClassificationResult,
    ModelSpec,
    ctc_greedy_decode,
    decode_classification,
    get_model,
    load_classifier,
    load_detector,
    load_recognizer,
    rotation_degrees,
    spec_from_dict,
    upright,
)
from sluice.models.backends import InferenceBackend
from sluice.models.backends.current import get_backend, set_backend
from sluice.models.backends.onnxruntime_backend import OnnxRuntimeBackend
from sluice.models.model_info import inspect_model, model_metadata
from sluice.models.text_lines import line_batches
from tests.model_fixtures import constant_model, ctc_scores, photo

CLASSES = ["cat", "dog", "bird"]


class RecordingBackend:
    """ONNX Runtime underneath; remembers each batch's model id and shape."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[int, ...]]] = []
        self._inner = OnnxRuntimeBackend()

    def run(self, spec: ModelSpec, batch: np.ndarray) -> list[np.ndarray]:
        self.calls.append((spec.model_id, batch.shape))
        return self._inner.run(spec, batch)


def _classifier_spec(path: Path, model_id: str = "test/cls") -> ModelSpec:
    return spec_from_dict(
        {"model_id": model_id, "task": "classification", "class_names": CLASSES, "input_size": [64, 64]}, path
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def test_probabilities_give_the_known_class(models: Path) -> None:
    probabilities = np.array([[0.1, 0.7, 0.2]], np.float32)
    spec = _classifier_spec(constant_model(models / "probs.onnx", probabilities, ("N", 3, 64, 64)))
    images = [
        np.zeros((480, 640, 3), np.uint8),
        np.zeros((30, 20, 3), np.uint8),
        np.zeros((64, 64), np.uint8),
    ]
    results = load_classifier(spec).classify(images)
    assert len(results) == 3
    for result in results:
        assert (result.class_name, result.class_id) == ("dog", 1)
        assert result.confidence == pytest.approx(0.7)
        np.testing.assert_allclose(result.scores, probabilities[0])
    assert results[0].scores_by_name() == pytest.approx({"cat": 0.1, "dog": 0.7, "bird": 0.2})
    assert [name for name, _ in results[0].top(2)] == ["dog", "bird"]
    as_dict = results[0].to_dict()
    assert as_dict["top"] == "dog" and [p["class"] for p in as_dict["predictions"]] == ["dog", "bird", "cat"]


def test_logits_go_through_a_softmax(models: Path) -> None:
    logits = np.array([[2.0, 0.5, -1.0]], np.float32)
    spec = _classifier_spec(constant_model(models / "logits.onnx", logits, ("N", 3, 64, 64)))
    (result,) = load_classifier(spec).classify([np.zeros((100, 100, 3), np.uint8)])
    expected = np.exp(logits[0]) / np.exp(logits[0]).sum()
    assert result.class_name == "cat"
    np.testing.assert_allclose(result.scores, expected, rtol=1e-5)
    assert result.confidence == pytest.approx(float(expected[0]))


def test_decode_classification_table() -> None:
    rows = np.array([[0.2, 0.3, 0.5], [5.0, 1.0, 1.0], [-0.5, 0.5, 1.0]], np.float32)
    results = decode_classification(rows, CLASSES)
    assert [r.class_name for r in results] == ["bird", "cat", "bird"]
    for r in results:
        assert r.scores.sum() == pytest.approx(1.0) and (r.scores >= 0).all()
    assert results[0].confidence == pytest.approx(0.5)  # a distribution is kept as it is
    with pytest.raises(ValueError, match="output has 2 classes but the spec names 3"):
        decode_classification(np.zeros((1, 2), np.float32), CLASSES)


def test_center_crop_keeps_the_middle_of_the_image() -> None:
    from sluice.models.preprocess import fit

    spec = spec_from_dict(
        {"model_id": "t", "task": "classification", "class_names": ["a"], "crop_fraction": 0.5}
    )
    image = np.zeros((400, 800, 3), np.uint8)
    image[100:300, 300:500] = 255  # the centre square covering half the shorter side
    cropped, placement = fit(image, spec)
    assert cropped.shape == (224, 224, 3)
    assert cropped[2:-2, 2:-2].min() == 255 and placement.scale_x == pytest.approx(224 / 200)


# CTC: charset "a", "b", "c" in the file's metadata; classes: blank, a, b, c, space.
STEPS = [1, 1, 0, 1, 2, 2, 4, 3, 0, 0]  # a a - a b b ' ' c - -  ->  "aab c"
BEST = [0.9, 0.8, 0.99, 0.7, 0.6, 0.5, 0.95, 0.85, 0.9, 0.9]


@pytest.fixture(scope="module")
def ctc_spec(models: Path) -> ModelSpec:
    path = constant_model(
        models / "ctc.onnx", ctc_scores(STEPS, BEST, 5), ("N", 3, 48, "W"), metadata={"character": "a\nb\nc"}
    )
    return spec_from_dict({"model_id": "test/ctc", "task": "ocr-recognition"}, path)


def test_ctc_decodes_a_known_string_with_repeats_and_blanks(ctc_spec: ModelSpec) -> None:
    crops = [np.zeros((30, 200, 3), np.uint8), np.zeros((10, 500, 3), np.uint8)]
    results = load_recognizer(ctc_spec).recognize(crops)
    # Kept steps: 0 (a), 3 (a after a blank), 4 (b), 6 (space), 7 (c).
    assert results == [("aab c", pytest.approx(np.mean([0.9, 0.7, 0.6, 0.95, 0.85])))] * 2


def test_ctc_charset_from_the_spec_without_a_space_class(models: Path) -> None:
    path = constant_model(
        models / "ctc-plain.onnx", ctc_scores([3, 0, 3, 3, 1], [0.9] * 5, 4), ("N", 3, 48, "W")
    )
    spec = spec_from_dict(
        {"model_id": "t", "task": "ocr-recognition", "ctc": {"charset": ["x", "y", "z"]}}, path
    )
    assert load_recognizer(spec).recognize([np.zeros((48, 100, 3), np.uint8)]) == [
        ("zzx", pytest.approx(0.9))
    ]


def test_ctc_refuses_a_charset_that_does_not_match_the_classes(models: Path) -> None:
    path = constant_model(models / "ctc-wrong.onnx", ctc_scores([1], [0.9], 9), ("N", 3, 48, "W"))
    spec = spec_from_dict({"model_id": "t", "task": "ocr-recognition", "ctc": {"charset": ["x", "y"]}}, path)
    with pytest.raises(ValueError, match="charset has 2 characters but the model outputs 9 classes"):
        load_recognizer(spec).recognize([np.zeros((48, 100, 3), np.uint8)])


def test_ctc_logits_and_empty_text() -> None:
    logits = np.log(ctc_scores([2, 2, 0, 1], [0.8, 0.8, 0.9, 0.6], 3)) + 7.0  # shifted: not a distribution
    blanks = ctc_scores([0, 0, 0], [0.9] * 3, 3)
    assert ctc_greedy_decode(logits, ["", "p", "q"]) == [("qp", pytest.approx(0.7, abs=1e-5))]
    assert ctc_greedy_decode(blanks, ["", "p", "q"]) == [("", 0.0)]


def test_empty_crops_read_as_nothing(ctc_spec: ModelSpec) -> None:
    empty = np.zeros((0, 10, 3), np.uint8)
    assert load_recognizer(ctc_spec).recognize([empty, np.zeros((20, 40, 3), np.uint8)])[0] == ("", 0.0)


def test_line_batches_group_similar_widths_and_pad_right() -> None:
    spec = get_model(TEXT_RECOGNIZER)
    crops = [np.full((48, w, 3), 255, np.uint8) for w in (2000, 100, 480, 96, 960, 500, 60, 3000)]
    batches = line_batches(crops, spec)
    assert [len(indices) for _, indices in batches] == [6, 2]
    first, indices = batches[0]
    assert indices == [6, 3, 1, 2, 5, 4]  # by aspect ratio
    assert first.shape == (6, 3, 48, 960)
    assert (first[0, :, :, :60] == 1.0).all() and (first[0, :, :, 60:] == 0.0).all()
    assert batches[1][0].shape == (2, 3, 48, 3000)


# The real models.


@pytest.fixture(scope="module")
def page_lines() -> list[np.ndarray]:
    """The text lines of scikit-image's page.png, top to bottom, cut where the text detector says."""
    page = photo("page.png")
    (found,) = load_detector(TEXT_DETECTOR).detect([page])
    boxes = sorted(found.xyxy.tolist(), key=lambda b: b[1])
    return [page[int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))] for x1, y1, x2, y2 in boxes]


def test_the_recogniser_reads_a_printed_page(page_lines: list[np.ndarray]) -> None:
    results = load_recognizer(TEXT_RECOGNIZER).recognize(page_lines)
    title, confidence = results[0]
    assert title == "Region-based segmentation" and confidence > 0.9
    text = " ".join(t for t, _ in results)
    for words in ("markers of the coins", "histogram of grey values", "np.zeros_like(coins)"):
        assert words in text
    assert all(c > 0.8 for _, c in results)


def test_the_recogniser_gives_the_same_text_alone_and_batched(page_lines: list[np.ndarray]) -> None:
    recognizer = load_recognizer(TEXT_RECOGNIZER)
    batched = recognizer.recognize(page_lines)
    alone = [recognizer.recognize([line])[0] for line in page_lines]
    # Padding to the widest line of a batch may change a character (as in PaddleOCR), no more.
    for (batched_text, _), (alone_text, _) in zip(batched, alone, strict=True):
        assert SequenceMatcher(None, batched_text, alone_text).ratio() > 0.95


def test_the_recogniser_charset_comes_from_the_model_file() -> None:
    spec = get_model(TEXT_RECOGNIZER)
    charset = model_metadata(spec.path)["character"].split("\n")
    assert len(charset) == 6623
    assert inspect_model(spec.path).outputs[0].shape[-1] == len(charset) + 2  # blank, charset, space


def test_the_text_angle_classifier_sees_upside_down_lines(page_lines: list[np.ndarray]) -> None:
    classifier = load_classifier(TEXT_ANGLE)
    upright_votes = [r.class_name for r in classifier.classify(page_lines)]
    flipped_votes = [
        r.class_name for r in classifier.classify([cv2.rotate(x, cv2.ROTATE_180) for x in page_lines])
    ]
    # A small model: most lines, not every line, are judged right.
    assert upright_votes.count("0") >= len(page_lines) - 2
    assert flipped_votes.count("180") >= len(page_lines) - 2


ROTATIONS = [
    (0, None),
    (90, cv2.ROTATE_90_CLOCKWISE),
    (180, cv2.ROTATE_180),
    (270, cv2.ROTATE_90_COUNTERCLOCKWISE),
]


@pytest.mark.parametrize("name", ["astronaut.png", "camera.png", "page.png"])
def test_the_orientation_classifier_finds_the_rotation(name: str) -> None:
    image = photo(name)
    rotated = [image if code is None else cv2.rotate(image, code) for _, code in ROTATIONS]
    results = load_classifier(ORIENTATION).classify(rotated)
    assert [rotation_degrees(r) for r in results] == [degrees for degrees, _ in ROTATIONS]
    assert all(r.confidence > 0.8 for r in results)
    for turned, result in zip(rotated, results, strict=True):
        np.testing.assert_array_equal(upright(turned, rotation_degrees(result)), image)


def test_the_orientation_classes_are_the_ones_in_the_model_file() -> None:
    spec = get_model(ORIENTATION)
    assert tuple(model_metadata(spec.path)["character"].split("\n")) == spec.class_names


@pytest.fixture
def recording() -> Iterator[RecordingBackend]:
    previous = get_backend()
    backend = RecordingBackend()
    set_backend(backend)
    yield backend
    set_backend(previous)


def test_runners_use_the_process_backend(
    recording: RecordingBackend, models: Path, ctc_spec: ModelSpec
) -> None:
    spec = _classifier_spec(constant_model(models / "b.onnx", np.array([[0.0, 0.0, 1.0]]), ("N", 3, 64, 64)))
    load_classifier(spec).classify([np.zeros((10, 10, 3), np.uint8)] * 3)
    load_recognizer(ctc_spec).recognize([np.zeros((10, 100, 3), np.uint8)])
    load_detector(TEXT_DETECTOR).detect([np.zeros((100, 200, 3), np.uint8)])
    assert recording.calls == [
        ("test/cls", (3, 3, 64, 64)),
        ("test/ctc", (1, 3, 48, 480)),
        (TEXT_DETECTOR, (1, 3, 480, 960)),
    ]


def test_a_backend_passed_in_wins(models: Path) -> None:
    backend: InferenceBackend = RecordingBackend()
    spec = _classifier_spec(constant_model(models / "c.onnx", np.array([[1.0, 0.0, 0.0]]), ("N", 3, 64, 64)))
    (result,) = load_classifier(spec, backend=backend).classify([np.zeros((8, 8, 3), np.uint8)])
    assert isinstance(result, ClassificationResult) and result.class_name == "cat"
    assert isinstance(backend, RecordingBackend) and backend.calls == [("test/cls", (1, 3, 64, 64))]


def test_runners_refuse_a_model_of_another_task(ctc_spec: ModelSpec) -> None:
    from sluice.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="'test/ctc' is a ocr-recognition model; a detector needs"):
        load_detector(ctc_spec)
    with pytest.raises(InvalidArgument, match="a classifier needs classification"):
        load_classifier(TEXT_DETECTOR)
    with pytest.raises(InvalidArgument, match="a recognizer needs ocr-recognition"):
        load_recognizer(ORIENTATION)
