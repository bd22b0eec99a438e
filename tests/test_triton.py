"""The same models on ONNX Runtime in-process and on a real Triton Inference Server agree.

The server is the nvidia-pytriton wheel's tritonserver on CPU, its python backend running ONNX
Runtime in the server's own environment (tests/triton_server.py). Raw outputs agree to 1e-3
relative; decoded boxes to 1e-3 relative with identical classes; texts and classes exactly.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv

from sluice.errors import FailedPrecondition, NotFound, Unavailable
from sluice.models.backends import InferenceBackend
from sluice.models.backends.current import reset_backend, set_backend
from sluice.models.backends.onnxruntime_backend import OnnxRuntimeBackend
from sluice.models.backends.triton_backend import TritonBackend, triton_model_name
from sluice.models.catalog import BuiltinCatalog
from sluice.models.classifier import load_classifier
from sluice.models.detector import load_detector
from sluice.models.preprocess import preprocess
from sluice.models.recognizer import load_recognizer
from sluice.models.registry import BUILT_IN_IDS, TEXT_DETECTOR, TEXT_RECOGNIZER, get_model
from sluice.models.spec import ModelSpec
from sluice.models.text_lines import line_batches
from tests.images import photographs
from tests.triton_server import TritonServer, start_triton, triton_server

__all__ = ["triton_server"]  # the fixture, imported so that this module's tests can ask for it

WORKFLOW = Path(__file__).parent.parent / "examples" / "workflows" / "text-detection.json"
TWO_STAGE = Path(__file__).parent.parent / "examples" / "workflows" / "text-reading.json"
RTOL = 1e-3
ORT = OnnxRuntimeBackend()


@pytest.fixture(scope="module")
def triton(triton_server: TritonServer) -> Iterator[TritonBackend]:
    backend = TritonBackend(triton_server.url, timeout_s=120)
    yield backend
    backend.close()


@pytest.fixture
def process_backend() -> Iterator[None]:
    yield
    reset_backend()


def same_size_photographs(count: int, size: tuple[int, int] = (480, 352)) -> list[np.ndarray]:
    """Photographs resized to one size, so that preprocessing batches them together."""
    return [cv2.resize(image, size) for image in photographs()[:count]]


@pytest.fixture(scope="module")
def text_lines() -> list[np.ndarray]:
    """Crops of the text lines ONNX Runtime finds on the photographs holding text."""
    images = photographs()
    found = load_detector(TEXT_DETECTOR, backend=ORT).detect(images)
    crops = []
    for image, detections in zip(images, found, strict=True):
        for x1, y1, x2, y2 in detections.xyxy.round().astype(int):
            crop = image[max(y1, 0) : y2, max(x1, 0) : x2]
            if crop.shape[0] >= 4 and crop.shape[1] >= 4:
                crops.append(crop)
    assert len(crops) >= 8
    return crops[:24]


def model_batches(spec: ModelSpec, lines: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Real model inputs for `spec`: its preprocessing of photographs or of text-line crops."""
    if spec.resize_mode == "fixed-height":
        return [tensor for tensor, _ in line_batches(list(lines), spec)]
    return [small(spec, tensor) for tensor, _, _ in preprocess(same_size_photographs(6), spec)]


def small(spec: ModelSpec, tensor: np.ndarray) -> np.ndarray:
    """The top left of a model input whose size may vary (a quarter of the compute, same content)."""
    if spec.input_size is not None:
        return tensor
    return np.ascontiguousarray(tensor[:, :, : tensor.shape[2] // 2, : tensor.shape[3] // 2])


def assert_outputs_close(expected: list[np.ndarray], found: list[np.ndarray]) -> None:
    assert len(found) == len(expected)
    for want, got in zip(expected, found, strict=True):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-5)


def assert_same_detections(expected: Sequence[sv.Detections], found: Sequence[sv.Detections]) -> None:
    assert len(found) == len(expected)
    for want, got in zip(expected, found, strict=True):
        assert len(got) == len(want)
        np.testing.assert_array_equal(got.class_id, want.class_id)
        np.testing.assert_array_equal(got.data["class_name"], want.data["class_name"])
        np.testing.assert_allclose(got.xyxy, want.xyxy, rtol=RTOL, atol=1e-3)
        assert got.confidence is not None and want.confidence is not None
        np.testing.assert_allclose(got.confidence, want.confidence, rtol=RTOL, atol=1e-5)


@pytest.mark.parametrize("model_id", sorted(BUILT_IN_IDS))
def test_raw_outputs_match_onnxruntime(
    triton: TritonBackend, model_id: str, text_lines: list[np.ndarray]
) -> None:
    spec = get_model(model_id)
    batches = model_batches(spec, text_lines)
    assert any(len(b) > 1 for b in batches)
    for batch in [*batches, batches[0][:1]]:
        assert_outputs_close(ORT.run(spec, batch), triton.run(spec, batch))


def test_a_batch_larger_than_the_models_limit_is_split(triton: TritonBackend) -> None:
    spec = get_model(TEXT_DETECTOR)
    ((batch, _, _),) = preprocess(same_size_photographs(7), dataclasses.replace(spec, max_batch=7))
    batch = small(spec, batch)
    assert len(batch) == 7 > triton.model_info(TEXT_DETECTOR).max_batch_size == spec.max_batch
    assert_outputs_close(ORT.run(spec, batch), triton.run(spec, batch))


def test_detections_match_on_photographs(triton: TritonBackend) -> None:
    images = list(photographs())
    expected = load_detector(TEXT_DETECTOR, backend=ORT).detect(images)
    assert sum(len(d) for d in expected) > 10
    assert_same_detections(expected, load_detector(TEXT_DETECTOR, backend=triton).detect(images))
    batched = same_size_photographs(6)
    assert_same_detections(
        load_detector(TEXT_DETECTOR, backend=ORT).detect(batched),
        load_detector(TEXT_DETECTOR, backend=triton).detect(batched),
    )


def test_recognized_text_matches(triton: TritonBackend, text_lines: list[np.ndarray]) -> None:
    expected = load_recognizer("sluice/text-recognizer", backend=ORT).recognize(text_lines)
    found = load_recognizer("sluice/text-recognizer", backend=triton).recognize(text_lines)
    assert any(text for text, _ in expected)
    assert [text for text, _ in found] == [text for text, _ in expected]
    np.testing.assert_allclose([c for _, c in found], [c for _, c in expected], rtol=RTOL)


@pytest.mark.parametrize(
    ("model_id", "on_lines"), [("sluice/orientation", False), ("sluice/text-angle", True)]
)
def test_classes_match(
    triton: TritonBackend, text_lines: list[np.ndarray], model_id: str, on_lines: bool
) -> None:
    images = text_lines if on_lines else list(photographs())
    expected = load_classifier(model_id, backend=ORT).classify(images)
    found = load_classifier(model_id, backend=triton).classify(images)
    assert [r.class_name for r in found] == [r.class_name for r in expected]
    np.testing.assert_allclose([r.confidence for r in found], [r.confidence for r in expected], rtol=RTOL)


def run_workflow(backend: InferenceBackend, images: list[np.ndarray]) -> list[sv.Detections]:
    from sluice.workflow import compile_workflow

    set_backend(backend)
    # A catalog of its own: compiled workflows are cached, and their blocks keep the runners
    # (bound to the process's backend when first used) of any earlier run.
    workflow = compile_workflow(json.loads(WORKFLOW.read_text()), models=BuiltinCatalog())
    return [result["predictions"] for result in workflow.run(images)]


def served_items(server: TritonServer, model_id: str) -> int:
    """How many items the server has run through a model so far."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.url)
    try:
        stats = client.get_inference_statistics(triton_model_name(model_id), as_json=True)
    finally:
        client.close()
    return sum(int(s.get("inference_count", 0)) for s in stats.get("model_stats", []))


@pytest.mark.usefixtures("process_backend")
def test_the_text_detection_workflow_gives_the_same_predictions(
    triton: TritonBackend, triton_server: TritonServer
) -> None:
    images = list(photographs())
    before = served_items(triton_server, TEXT_DETECTOR)
    assert_same_detections(run_workflow(ORT, images), run_workflow(triton, images))
    assert served_items(triton_server, TEXT_DETECTOR) == before + len(images)  # it ran on Triton
    one = images[-1:]
    assert_same_detections(run_workflow(ORT, one), run_workflow(triton, one))


@pytest.mark.usefixtures("process_backend")
def test_the_two_stage_workflow_gives_the_same_predictions_and_texts(
    triton: TritonBackend, triton_server: TritonServer
) -> None:
    """Detect text, crop, read it: the same boxes and the same text per detection on either backend."""
    from sluice.workflow import compile_workflow

    images = list(photographs())
    read_before = served_items(triton_server, TEXT_RECOGNIZER)
    runs = {}
    for backend in (ORT, triton):
        set_backend(backend)
        workflow = compile_workflow(json.loads(TWO_STAGE.read_text()), models=BuiltinCatalog())
        runs[backend.name] = workflow.run(images)
    local, remote = runs[ORT.name], runs[triton.name]
    assert_same_detections([r["predictions"] for r in local], [r["predictions"] for r in remote])
    assert [r["texts"] for r in local] == [r["texts"] for r in remote]
    assert any(r["texts"] for r in remote), "no text was read on any photograph"
    assert served_items(triton_server, TEXT_RECOGNIZER) > read_before  # the recogniser ran there


def test_worker_slots_share_one_backend(triton: TritonBackend) -> None:
    """Threads share the backend; the server's dynamic batcher may merge their requests."""
    spec = get_model(TEXT_DETECTOR)
    ((batch, _, _),) = preprocess(same_size_photographs(4), spec)
    inputs = [small(spec, batch[i : i + 1]) for i in range(4)] * 2
    expected = [ORT.run(spec, x) for x in inputs]
    found: list[list[np.ndarray] | None] = [None] * len(inputs)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            found[index] = triton.run(spec, inputs[index])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    for want, got in zip(expected, found, strict=True):
        assert got is not None
        assert_outputs_close(want, got)


def test_requests_the_server_cannot_serve_are_clear_errors(
    triton: TritonBackend, triton_server: TritonServer
) -> None:
    spec = dataclasses.replace(get_model(TEXT_DETECTOR), model_id="nobody/nothing")
    with pytest.raises(NotFound, match=rf"Triton server {triton_server.url} has no model 'nobody--nothing'"):
        triton.run(spec, np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(
        FailedPrecondition, match=r"model 'sluice--text-detector' on Triton server .* refused"
    ):
        triton.run(get_model(TEXT_DETECTOR), np.zeros((1, 4, 32, 32), np.float32))  # 4 channels, not 3
    with pytest.raises(ValueError, match="empty"):
        triton.run(get_model(TEXT_DETECTOR), np.zeros((0, 3, 32, 32), np.float32))


def test_a_stopped_server_is_unavailable(tmp_path: Path) -> None:
    spec = get_model("sluice/text-angle")
    server = start_triton([spec], tmp_path)
    backend = TritonBackend(server.url, timeout_s=30)
    try:
        batch = np.zeros((2, 3, 48, 192), np.float32)
        assert_outputs_close(ORT.run(spec, batch), backend.run(spec, batch))
        server.stop()
        with pytest.raises(Unavailable, match=rf"Triton server {server.url} is unreachable"):
            backend.run(spec, batch)
    finally:
        server.stop()
        backend.close()
