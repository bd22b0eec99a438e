"""Models: the YOLOv8 decoder against a crafted ONNX model with known boxes, and the real
PP-OCR text detector on real photographs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from sluice.errors import NotFound
from sluice.models import (
    TEXT_DETECTOR,
    Detector,
    ModelSpec,
    Placement,
    decode_yolov8,
    fit,
    get_model,
    load_detector,
    load_session,
    preprocess,
    to_tensor,
)
from tests.model_fixtures import constant_yolov8_model, photo, yolov8_output

CLASSES = ("cat", "dog", "bird")
# A 1280x720 image letterboxed into 640x640: scale 0.5, 140 rows of padding above and below.
WIDE = (720, 1280)
WIDE_SCALE, WIDE_TOP = 0.5, 140

# (x1, y1, x2, y2) in the original 1280x720 image, class, confidence, and whether it survives.
KNOWN = [
    ((100, 200, 300, 400), 0, 0.9, True),
    ((104, 204, 304, 404), 0, 0.8, False),  # same class, IoU ~0.92 with the first: NMS drops it
    ((100, 200, 300, 400), 1, 0.7, True),  # same place, other class: class-wise NMS keeps it
    ((800, 50, 1200, 700), 2, 0.6, True),
    ((500, 500, 600, 600), 1, 0.2, False),  # below the confidence threshold
    ((10, 10, 60, 60), 2, 0.39, False),  # just below the confidence threshold
]


def _to_model_input(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """Original-image xyxy -> model-input cx, cy, w, h for the wide image."""
    x1, y1, x2, y2 = (v * WIDE_SCALE for v in box)
    y1, y2 = y1 + WIDE_TOP, y2 + WIDE_TOP
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1


def _raw_output(extra_anchors: int = 50) -> np.ndarray:
    return yolov8_output(
        [_to_model_input(box) for box, *_ in KNOWN],
        [cls for _, cls, _, _ in KNOWN],
        [score for _, _, score, _ in KNOWN],
        num_classes=len(CLASSES),
        extra_anchors=extra_anchors,
    )


@pytest.fixture(scope="module")
def crafted_spec(tmp_path_factory: pytest.TempPathFactory) -> ModelSpec:
    path = constant_yolov8_model(tmp_path_factory.mktemp("models") / "crafted.onnx", _raw_output())
    return ModelSpec(model_id="test/crafted-yolov8", path=path, class_names=CLASSES)


def _confidence(det: sv.Detections) -> np.ndarray:
    assert det.confidence is not None
    return det.confidence


def _class_id(det: sv.Detections) -> np.ndarray:
    assert det.class_id is not None
    return det.class_id


def _sorted(det: sv.Detections) -> sv.Detections:
    assert det.confidence is not None
    result = det[np.argsort(-det.confidence)]
    assert isinstance(result, sv.Detections)
    return result


def test_letterbox_places_a_wide_image_in_the_middle(crafted_spec: ModelSpec) -> None:
    image = np.full((*WIDE, 3), 200, dtype=np.uint8)
    fitted, placement = fit(image, crafted_spec)
    assert fitted.shape == (640, 640, 3)
    assert placement == Placement(0.5, 0.5, 0, WIDE_TOP, 1280, 720)
    assert (fitted[:WIDE_TOP] == 114).all() and (fitted[-WIDE_TOP:] == 114).all()
    assert (fitted[WIDE_TOP:-WIDE_TOP] == 200).all()


def test_crafted_model_decodes_to_the_known_boxes(crafted_spec: ModelSpec) -> None:
    detector = Detector(crafted_spec)
    (found,) = detector.detect([np.zeros((*WIDE, 3), dtype=np.uint8)], confidence=0.4, iou=0.5)
    expected = [(box, cls, score) for box, cls, score, keep in KNOWN if keep]
    found = _sorted(found)
    assert len(found) == len(expected)
    np.testing.assert_allclose(found.xyxy, [box for box, _, _ in expected], atol=1e-3)
    np.testing.assert_array_equal(_class_id(found), [cls for _, cls, _ in expected])
    np.testing.assert_allclose(_confidence(found), [score for _, _, score in expected], atol=1e-6)
    assert list(found.data["class_name"]) == [CLASSES[cls] for _, cls, _ in expected]


def test_each_image_of_a_batch_maps_back_to_its_own_size(crafted_spec: ModelSpec) -> None:
    detector = Detector(crafted_spec)
    wide = np.zeros((*WIDE, 3), dtype=np.uint8)
    tall = np.zeros((640, 480, 3), dtype=np.uint8)  # scale 1, 80 columns of padding on the left
    first, second, third = detector.detect([wide, tall, wide], confidence=0.4)
    np.testing.assert_allclose(_sorted(first).xyxy, _sorted(third).xyxy)
    # The first kept box is at x 50..150, y 240..340 in the model input.
    top = _sorted(second)
    np.testing.assert_allclose(top.xyxy[0], [0, 240, 70, 340], atol=1e-3)  # clipped at x = 0
    assert (top.xyxy[:, [0, 2]] >= 0).all() and (top.xyxy[:, [0, 2]] <= 480).all()


def test_lower_threshold_and_class_agnostic_nms() -> None:
    placement = Placement(WIDE_SCALE, WIDE_SCALE, 0, WIDE_TOP, 1280, 720)
    raw = _raw_output(extra_anchors=3)
    (everything,) = decode_yolov8(raw, [placement], CLASSES, confidence=0.1, iou=0.5)
    assert len(everything) == 5  # the 0.2 and 0.39 anchors now pass; the duplicate still goes
    (agnostic,) = decode_yolov8(raw, [placement], CLASSES, 0.4, 0.5, class_agnostic=True)
    assert sorted(_class_id(agnostic).tolist()) == [0, 2]  # the dog under the cat is dropped too
    (top_two,) = decode_yolov8(raw, [placement], CLASSES, 0.4, 0.5, max_detections=2)
    np.testing.assert_allclose(np.sort(_confidence(top_two)), [0.7, 0.9], atol=1e-6)


def test_anchors_last_layout_decodes_the_same() -> None:
    placement = Placement(WIDE_SCALE, WIDE_SCALE, 0, WIDE_TOP, 1280, 720)
    raw = _raw_output()
    (channels_first,) = decode_yolov8(raw, [placement], CLASSES, 0.4, 0.5)
    (anchors_first,) = decode_yolov8(raw.transpose(0, 2, 1), [placement], CLASSES, 0.4, 0.5)
    np.testing.assert_allclose(_sorted(channels_first).xyxy, _sorted(anchors_first).xyxy)


def test_a_wrong_class_count_is_refused() -> None:
    with pytest.raises(ValueError, match="does not match 2 classes"):
        decode_yolov8(_raw_output(), [Placement(1, 1, 0, 0, 640, 640)], ("a", "b"), 0.4, 0.5)


def test_nothing_above_threshold_gives_empty_detections() -> None:
    raw = np.zeros((1, 4 + len(CLASSES), 20), dtype=np.float32)
    (found,) = decode_yolov8(raw, [Placement(1, 1, 0, 0, 640, 640)], CLASSES, 0.4, 0.5)
    assert len(found) == 0 and len(found.data["class_name"]) == 0


def test_sessions_are_shared_and_do_not_spin(crafted_spec: ModelSpec) -> None:
    session = load_session(crafted_spec.path, 1)
    assert load_session(str(crafted_spec.path), 1) is session
    assert load_session(crafted_spec.path, 2) is not session
    options = session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 1
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(NotFound, match=r"unknown model 'acme/x'; known models: .*sluice/text-detector"):
        get_model("acme/x")


def test_text_detector_spec_points_at_the_wheel() -> None:
    spec = get_model(TEXT_DETECTOR)
    assert spec.path.name == "ch_PP-OCRv4_det_infer.onnx" and spec.path.is_file()
    assert spec.output_layout == "dbnet" and spec.class_names == ("text",)
    assert spec.task == "ocr-detection"


def test_dynamic_inputs_are_multiples_of_32() -> None:
    spec = get_model(TEXT_DETECTOR)
    for shape in [(191, 384), (4000, 3000), (17, 900), (1, 1)]:
        (tensor, _, (placement,)), *_ = preprocess([np.zeros((*shape, 3), np.uint8)], spec)
        assert tensor.shape[2] % 32 == 0 and tensor.shape[3] % 32 == 0
        assert max(tensor.shape[2:]) <= spec.max_side + 16
        assert placement.image_height == shape[0] and placement.image_width == shape[1]


@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_tensors_hold_each_channel_normalised_in_the_models_order(order: str) -> None:
    """(pixel * scale - mean) / std per channel, channels in the model's order, batch and
    channel first: what the model was trained on, for a 2-image batch of an odd size."""
    spec = replace(
        get_model(TEXT_DETECTOR),
        channel_order=order,
        scale=1 / 255,
        mean=(0.5, 0.4, 0.3),
        std=(0.2, 0.25, 0.5),
    )
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (37, 53, 3), dtype=np.uint8) for _ in range(2)]
    tensor = to_tensor(images, spec)
    assert tensor.shape == (2, 3, 37, 53) and tensor.dtype == np.float32 and tensor.flags.c_contiguous
    for n, image in enumerate(images):
        for c in range(3):
            source = image[:, :, 2 - c] if order == "rgb" else image[:, :, c]  # images are BGR
            expected = (source.astype(np.float64) / 255 - spec.mean[c]) / spec.std[c]
            np.testing.assert_allclose(tensor[n, c], expected, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def text_detector() -> Detector:
    return load_detector(TEXT_DETECTOR, intra_op_threads=2)


def test_text_lines_of_a_printed_page_are_found(text_detector: Detector) -> None:
    page = photo("page.png")  # 384x191: a title, five lines of text and a line of code
    (found,) = text_detector.detect([page])
    height, width = page.shape[:2]
    assert 4 <= len(found) <= 10
    boxes = found.xyxy
    assert (boxes[:, [0, 2]] >= 0).all() and (boxes[:, [0, 2]] <= width).all()
    assert (boxes[:, [1, 3]] >= 0).all() and (boxes[:, [1, 3]] <= height).all()
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (widths > 2 * heights).all(), "text lines are wide"
    assert (heights < 40).all(), "no box swallows several lines"
    # The title "Region-based segmentation" sits in the top 40 rows, left of x = 300.
    title = [b for b in boxes if b[1] < 20 and b[3] > 25 and b[3] < 45]
    assert len(title) == 1 and title[0][0] < 20 and 250 < title[0][2] < 320
    # Several full-width lines of body text.
    assert ((widths > 300) & (boxes[:, 1] > 40)).sum() >= 2
    assert found.confidence is not None and (found.confidence >= 0.5).all()
    assert set(found.data["class_name"]) == {"text"}


def test_blank_images_have_no_text(text_detector: Detector) -> None:
    white = np.full((480, 640, 3), 255, np.uint8)
    black = np.zeros((300, 200, 3), np.uint8)
    assert [len(d) for d in text_detector.detect([white, black])] == [0, 0]


def test_batches_give_the_same_boxes_as_single_images(text_detector: Detector) -> None:
    page, coffee = photo("page.png"), photo("coffee.png")
    alone = text_detector.detect([page])[0]
    batch = text_detector.detect([page, coffee, np.full_like(page, 255), page])
    assert len(batch) == 4 and len(batch[2]) == 0
    for found in (batch[0], batch[3]):
        np.testing.assert_allclose(_sorted(found).xyxy, _sorted(alone).xyxy, atol=0.5)


def test_gray_images_are_accepted(text_detector: Detector) -> None:
    gray = photo("page.png")[:, :, 0]
    assert len(text_detector.detect([gray])[0]) >= 4


def test_a_higher_confidence_keeps_fewer_boxes(text_detector: Detector) -> None:
    page = photo("page.png")
    assert len(text_detector.detect([page], confidence=0.99)[0]) < len(text_detector.detect([page])[0])


def test_spec_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="class_names"):
        ModelSpec(model_id="x", path=tmp_path / "x.onnx", class_names=())
    spec = ModelSpec(model_id="x", path=tmp_path / "x.onnx", class_names=("a",))
    with pytest.raises(ValueError, match="std"):
        replace(spec, std=(1.0, 0.0, 1.0))
