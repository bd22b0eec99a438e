"""The model registry (ModelService in the staging process), served for real (Postgres, NATS, a
local object store), called over gRPC and through the CLI; and the worker's StoreCatalog loading
what it registered."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sluice import storage
from sluice.cli.main import main
from sluice.clients import aio_channel
from sluice.config import Settings
from sluice.errors import InvalidArgument, NotFound, Unavailable
from sluice.models import (
    BUILT_IN_IDS,
    ORIENTATION,
    StoreCatalog,
    get_model,
    load_classifier,
    load_recognizer,
    spec_from_dict,
    spec_from_json,
)
from sluice.models.stored import stored_json
from sluice.v1 import models_pb2, models_pb2_grpc
from sluice_staging.server import RunningStaging, start
from sluice_staging.servicer import StagingOptions
from tests.model_fixtures import constant_model, ctc_scores

CLS_SPEC = {"task": "classification", "class_names": ["cat", "dog", "bird"], "input_size": [64, 64]}
DOG = np.array([[0.1, 0.7, 0.2]], np.float32)
BIRD = np.array([[0.1, 0.2, 0.7]], np.float32)


@dataclass
class Registry:
    running: RunningStaging
    channel: grpc.aio.Channel
    stub: Any

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.port}"


Launch = Callable[..., Awaitable[Registry]]


@pytest.fixture
async def launch(settings: Settings) -> AsyncIterator[Launch]:
    """Starts staging on a free port with the given StagingOptions fields; stops it afterwards."""
    started: list[Registry] = []

    async def _launch(**options: Any) -> Registry:
        running = await start(settings, "127.0.0.1:0", StagingOptions(**options))
        channel = aio_channel(f"127.0.0.1:{running.port}")
        registry = Registry(running, channel, models_pb2_grpc.ModelServiceStub(channel))
        started.append(registry)
        return registry

    yield _launch
    for registry in started:
        await registry.channel.close()
        await registry.running.stop()


@pytest.fixture
async def registry(launch: Launch) -> Registry:
    return await launch()


def classifier_bytes(
    tmp_path: Path, output: np.ndarray, input_shape: tuple[Any, ...] = ("N", 3, 64, 64)
) -> bytes:
    return constant_model(tmp_path / "model.onnx", output, input_shape).read_bytes()


def chunks(model_id: str, spec: dict[str, Any] | str, data: bytes, size: int = 1000) -> list[Any]:
    """The first chunk with the id and spec (and no bytes), then the file in `size`-byte chunks."""
    spec_json = spec if isinstance(spec, str) else json.dumps(spec)
    first = models_pb2.RegisterModelChunk(model_id=model_id, spec_json=spec_json)
    return [
        first,
        *(models_pb2.RegisterModelChunk(data=data[i : i + size]) for i in range(0, len(data), size)),
    ]


async def register(
    registry: Registry, metadata: Sequence[tuple[str, str]], model_id: str, spec: dict[str, Any], data: bytes
) -> models_pb2.Model:
    return await registry.stub.RegisterModel(iter(chunks(model_id, spec, data)), metadata=metadata)


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def listed(registry: Registry, metadata: Sequence[tuple[str, str]]) -> dict[str, models_pb2.Model]:
    reply = await registry.stub.ListModels(models_pb2.ListModelsRequest(), metadata=metadata)
    return {m.model_id: m for m in reply.models}


def _local_path(url: str) -> Path:
    return Path(storage.filesystem(url)[1])


async def test_register_list_show_and_run_from_the_store(
    registry: Registry, alpha: Any, store_url: str, tmp_path: Path
) -> None:
    data = classifier_bytes(tmp_path, DOG)
    model = await register(registry, alpha, "acme/pets", CLS_SPEC, data)
    assert (model.model_id, model.task, model.built_in) == ("acme/pets", "classification", False)
    assert model.size_bytes == len(data) and model.sha256 == hashlib.sha256(data).hexdigest()
    assert model.url == storage.ObjectStore(store_url).model_url("alpha", "acme/pets") + "/model.onnx"
    assert model.created_at.seconds > 0
    assert _local_path(model.url).read_bytes() == data
    stored = json.loads(_local_path(model.url).with_name("spec.json").read_text())
    assert stored["sha256"] == model.sha256 and stored["spec"]["class_names"] == ["cat", "dog", "bird"]

    models = await listed(registry, alpha)
    assert set(models) == {*BUILT_IN_IDS, "acme/pets"}
    assert models[ORIENTATION].built_in and models[ORIENTATION].sha256 and not models[ORIENTATION].url
    shown = await registry.stub.GetModel(models_pb2.GetModelRequest(model_id="acme/pets"), metadata=alpha)
    assert shown == model
    assert spec_from_json(shown.spec_json) == spec_from_dict({**CLS_SPEC, "model_id": "acme/pets"})
    built_in = await registry.stub.GetModel(models_pb2.GetModelRequest(model_id=ORIENTATION), metadata=alpha)
    assert spec_from_json(built_in.spec_json, get_model(ORIENTATION).path) == get_model(ORIENTATION)

    catalog = StoreCatalog("alpha", store_url, tmp_path / "cache")
    spec = catalog.spec("acme/pets")
    assert spec.path == tmp_path / "cache" / model.sha256 / "model.onnx" and spec.path.read_bytes() == data
    (result,) = load_classifier(spec).classify([np.zeros((120, 90, 3), np.uint8)])
    assert result.class_name == "dog" and result.confidence == pytest.approx(0.7)
    assert catalog.spec(ORIENTATION) == get_model(ORIENTATION)


async def test_workspaces_are_isolated(
    registry: Registry, alpha: Any, beta: Any, store_url: str, tmp_path: Path
) -> None:
    await register(registry, alpha, "acme/pets", CLS_SPEC, classifier_bytes(tmp_path, DOG))
    assert "acme/pets" not in await listed(registry, beta)
    error = await rpc_error(
        registry.stub.GetModel(models_pb2.GetModelRequest(model_id="acme/pets"), metadata=beta)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND and error.details() == "unknown model 'acme/pets'"
    with pytest.raises(NotFound, match="unknown model 'acme/pets'"):
        StoreCatalog("beta", store_url, tmp_path / "cache").spec("acme/pets")

    theirs = await register(registry, beta, "acme/pets", CLS_SPEC, classifier_bytes(tmp_path, BIRD))
    ours = await registry.stub.GetModel(models_pb2.GetModelRequest(model_id="acme/pets"), metadata=alpha)
    assert theirs.sha256 != ours.sha256
    beta_spec = StoreCatalog("beta", store_url, tmp_path / "cache").spec("acme/pets")
    assert load_classifier(beta_spec).classify([np.zeros((9, 9, 3), np.uint8)])[0].class_name == "bird"


async def test_corrupt_and_non_onnx_files_are_refused(
    registry: Registry, alpha: Any, store_url: str, tmp_path: Path
) -> None:
    real = classifier_bytes(tmp_path, DOG)
    for bad in (b"definitely not onnx" * 50, real[: len(real) // 2], bytes(range(256)) * 8):
        error = await rpc_error(register(registry, alpha, "acme/bad", CLS_SPEC, bad))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith("model 'acme/bad' is not a loadable ONNX file: ")
        assert "\n" not in error.details() and "/tmp" not in error.details()
    error = await rpc_error(
        registry.stub.GetModel(models_pb2.GetModelRequest(model_id="acme/bad"), metadata=alpha)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert set(storage.list_objects(store_url)) == set()


async def test_built_in_ids_cannot_be_replaced(registry: Registry, alpha: Any, tmp_path: Path) -> None:
    data = classifier_bytes(tmp_path, DOG)
    error = await rpc_error(register(registry, alpha, ORIENTATION, CLS_SPEC, data))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "model 'sluice/orientation' is built in and cannot be replaced"
    error = await rpc_error(register(registry, alpha, "sluice/mine", CLS_SPEC, data))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "kept for built-in models" in error.details()


REFUSALS: list[tuple[str, dict[str, Any] | str, str]] = [
    ("Acme/Pets", CLS_SPEC, "invalid model id 'Acme/Pets': use lower case letters"),
    ("a/b/c", CLS_SPEC, "invalid model id 'a/b/c'"),
    ("acme/pets", {"task": "classification"}, "field 'class_names' is empty: a classification model"),
    ("acme/pets", {**CLS_SPEC, "task": "segmentation"}, "field 'task' must be one of"),
    ("acme/pets", "{not json", "model spec is not valid JSON"),
    ("acme/pets", {**CLS_SPEC, "model_id": "acme/other"}, "registered as 'acme/pets'"),
    ("acme/pets", {**CLS_SPEC, "class_names": list("abcde")}, "has 3 classes, the spec names 5"),
    ("acme/pets", {**CLS_SPEC, "input_size": [32, 32]}, "does not take the spec's 32x32 images"),
    (
        "acme/pets",
        {"task": "object-detection", "class_names": ["a"], "input_size": [64, 64]},
        "is not the yolov8 layout",
    ),
]


@pytest.mark.parametrize(("model_id", "spec", "message"), REFUSALS)
async def test_bad_ids_specs_and_misfits_are_refused(
    registry: Registry, alpha: Any, tmp_path: Path, model_id: str, spec: dict[str, Any] | str, message: str
) -> None:
    call = registry.stub.RegisterModel(
        iter(chunks(model_id, spec, classifier_bytes(tmp_path, DOG))), metadata=alpha
    )
    error = await rpc_error(call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()


async def test_malformed_streams_are_refused(registry: Registry, alpha: Any, tmp_path: Path) -> None:
    data = classifier_bytes(tmp_path, DOG)
    cases = [
        ([], "RegisterModel got no chunks"),
        (chunks("acme/pets", CLS_SPEC, b""), "model 'acme/pets': no file bytes came after the spec"),
        ([models_pb2.RegisterModelChunk(data=data)], "the first chunk of RegisterModel must carry model_id"),
        (
            [
                *chunks("acme/pets", CLS_SPEC, data),
                models_pb2.RegisterModelChunk(model_id="acme/two", data=b"x"),
            ],
            "one stream registers one model",
        ),
    ]
    for stream, message in cases:
        error = await rpc_error(registry.stub.RegisterModel(iter(stream), metadata=alpha))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and message in error.details()


async def test_oversized_models_are_refused(launch: Launch, alpha: Any, tmp_path: Path) -> None:
    registry = await launch(max_model_bytes=100)
    error = await rpc_error(register(registry, alpha, "acme/pets", CLS_SPEC, classifier_bytes(tmp_path, DOG)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "model files over 100 bytes are not accepted"


async def test_registering_again_replaces_the_model(
    registry: Registry, alpha: Any, store_url: str, tmp_path: Path
) -> None:
    first = await register(registry, alpha, "acme/pets", CLS_SPEC, classifier_bytes(tmp_path, DOG))
    early = StoreCatalog("alpha", store_url, tmp_path / "cache")
    assert (
        load_classifier(early.spec("acme/pets")).classify([np.zeros((9, 9, 3), np.uint8)])[0].class_name
        == "dog"
    )

    second = await register(registry, alpha, "acme/pets", CLS_SPEC, classifier_bytes(tmp_path, BIRD))
    assert second.sha256 != first.sha256
    models = await listed(registry, alpha)
    assert models["acme/pets"].sha256 == second.sha256 and len(models) == len(BUILT_IN_IDS) + 1
    fresh = StoreCatalog("alpha", store_url, tmp_path / "cache").spec("acme/pets")
    assert load_classifier(fresh).classify([np.zeros((9, 9, 3), np.uint8)])[0].class_name == "bird"
    assert early.spec("acme/pets").path.parent.name == first.sha256  # a catalog keeps what it saw
    assert {p.name for p in (tmp_path / "cache").iterdir()} == {first.sha256, second.sha256}


async def test_a_recogniser_registered_with_its_charset_in_the_file(
    registry: Registry, alpha: Any, store_url: str, tmp_path: Path
) -> None:
    scores = ctc_scores([1, 1, 0, 1, 2, 4, 3], [0.9] * 7, 5)
    path = constant_model(tmp_path / "rec.onnx", scores, ("N", 3, 48, "W"), metadata={"character": "a\nb\nc"})
    model = await register(registry, alpha, "acme/reader", {"task": "ocr-recognition"}, path.read_bytes())
    assert json.loads(model.spec_json)["resize_mode"] == "fixed-height"
    spec = StoreCatalog("alpha", store_url, tmp_path / "cache").spec("acme/reader")
    assert load_recognizer(spec).recognize([np.zeros((20, 300, 3), np.uint8)]) == [
        ("aab c", pytest.approx(0.9))
    ]

    without = constant_model(tmp_path / "rec2.onnx", scores, ("N", 3, 48, "W"))
    error = await rpc_error(
        register(registry, alpha, "acme/reader2", {"task": "ocr-recognition"}, without.read_bytes())
    )
    assert "no 'character' metadata" in error.details()


async def test_a_fixed_batch_size_is_recorded_in_the_spec(
    registry: Registry, alpha: Any, tmp_path: Path
) -> None:
    model = await register(registry, alpha, "b1", CLS_SPEC, classifier_bytes(tmp_path, DOG, (1, 3, 64, 64)))
    assert json.loads(model.spec_json)["max_batch"] == 1


async def test_health_and_reflection_include_the_model_service(registry: Registry) -> None:
    health = health_pb2_grpc.HealthStub(registry.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="sluice.v1.ModelService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(registry.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    replies = [r async for r in reflection.ServerReflectionInfo(iter([request]))]
    names = {s.name for s in replies[0].list_services_response.service}
    assert {"sluice.v1.ModelService", "sluice.v1.StagingService"} <= names


async def test_the_cli_registers_lists_and_shows(
    registry: Registry,
    api_keys: tuple[Path, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    connection = ["--api-key", api_keys[1]["alpha"], "--staging-address", registry.address]
    constant_model(tmp_path / "pets.onnx", DOG, ("N", 3, 64, 64))
    (tmp_path / "names.txt").write_text("cat\ndog\n\nbird\n")

    async def sluice(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, [*argv, *connection])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, _ = await sluice(
        "models", "register", "--model-id", "acme/pets", "--file", str(tmp_path / "pets.onnx"),
        "--task", "classification", "--class-names-file", str(tmp_path / "names.txt"),
        "--input-size", "64x64", "--resize", "resize", "--mean", "0.485,0.456,0.406",
        "--std", "0.229,0.224,0.225", "--channel-order", "bgr",
    )  # fmt: skip
    assert code == 0 and out.startswith("model acme/pets registered: classification (yolov8-cls)")

    code, out, _ = await sluice("models", "list")
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert code == 0 and set(rows) == {*BUILT_IN_IDS, "acme/pets"}
    assert "built-in" in rows[ORIENTATION] and "yolov8-cls" in rows["acme/pets"]

    code, out, _ = await sluice("models", "show", "--model-id", "acme/pets")
    shown = json.loads(out[out.index("{") :])
    assert code == 0 and shown["class_names"] == ["cat", "dog", "bird"]
    assert shown["std"] == [0.229, 0.224, 0.225] and shown["channel_order"] == "bgr"
    assert shown["resize_mode"] == "resize"

    refusals = [
        (["--task", "object-detection"], "error: model spec 'acme/x': field 'class_names' is empty"),
        (
            ["--task", "classification", "--class-names", "a", "--mean", "1,2"],
            "error: --mean takes three numbers",
        ),
        (
            ["--task", "classification", "--input-size", "64", "--class-names", "a"],
            "error: --input-size takes",
        ),
        (
            ["--task", "classification", "--class-names", "a,b,c"],
            "error: model 'acme/x' does not fit its spec",
        ),
    ]
    for options, message in refusals:
        code, _, err = await sluice(
            "models", "register", "-m", "acme/x", "-f", str(tmp_path / "pets.onnx"), *options
        )
        assert code == 1 and err.startswith(message) and err.count("\n") == 1, err
    code, _, err = await sluice("models", "show", "--model-id", "acme/none")
    assert code == 1 and err == "error: unknown model 'acme/none'\n"
    code, _, err = await sluice("models", "register", "-m", ORIENTATION, "-f", str(tmp_path / "pets.onnx"),
                                "--task", "classification", "--class-names", "0,90,180,270")  # fmt: skip
    assert code == 1 and err == "error: model 'sluice/orientation' is built in and cannot be replaced\n"


def test_the_store_catalog_refuses_what_it_cannot_trust(store_url: str, tmp_path: Path) -> None:
    catalog = StoreCatalog("alpha", store_url, tmp_path / "cache")
    with pytest.raises(InvalidArgument, match=r"invalid model id '\.\./x'"):
        catalog.spec("../x")
    with pytest.raises(NotFound, match="unknown model 'acme/none'"):
        catalog.spec("acme/none")
    # spec.json names bytes that are not the ones stored (a replacement half done, or damage).
    folder = storage.ObjectStore(store_url).model_url("alpha", "acme/torn")
    data = classifier_bytes(tmp_path, DOG)
    spec = spec_from_dict({**CLS_SPEC, "model_id": "acme/torn"})
    storage.write_bytes(folder, "model.onnx", data)
    storage.write_bytes(folder, "spec.json", stored_json(spec, "0" * 64, len(data)).encode())
    with pytest.raises(Unavailable, match="model 'acme/torn' kept changing while it was read"):
        catalog.spec("acme/torn")
    assert not any((tmp_path / "cache").rglob("*.onnx*"))
