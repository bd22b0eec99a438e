"""Triton model repositories, model names, the export command and the worker's backend choice.

No server here (tests/test_triton.py runs a real one): config.pbtxt is parsed with Triton's own
ModelConfig message, so a field name or value Triton would refuse fails here.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import socket
import sys
import types
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnx
import pytest
from google.protobuf import json_format, text_format
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2

from sluice.cli.context import add_connection_options
from sluice.cli.triton_commands import register_export
from sluice.errors import InvalidArgument, NotFound, Unavailable
from sluice.models.backends.current import get_backend, reset_backend, set_backend
from sluice.models.backends.onnxruntime_backend import OnnxRuntimeBackend
from sluice.models.backends.triton_backend import TritonBackend, TritonModelInfo, triton_model_name
from sluice.models.registry import TEXT_DETECTOR, get_model
from sluice.models.spec import ModelSpec
from sluice.models.spec_json import spec_to_json
from sluice.models.triton_repository import PYTHON_MODEL, write_repository
from sluice.v1 import models_pb2, models_pb2_grpc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_config(folder: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def tiny_model(path: Path, batch: int | str = "N", inputs: int = 1) -> Path:
    """An ONNX model: x [batch, 3, 4, 4] (and maybe more inputs) -> y = x * 2."""
    names = [f"x{i}" for i in range(inputs)]
    graph = helper.make_graph(
        [helper.make_node("Mul", [names[0], "two"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, 3, 4, 4]) for n in names],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3, 4, 4])],
        [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def tiny_spec(path: Path, model_id: str = "user/tiny") -> ModelSpec:
    return ModelSpec(
        model_id=model_id,
        path=path,
        class_names=("a", "b"),
        task="classification",
        output_layout="yolov8-cls",
        input_size=(4, 4),
        resize_mode="resize",
        max_batch=3,
    )


@pytest.mark.parametrize(
    ("model_id", "name"),
    [
        ("sluice/text-detector", "sluice--text-detector"),
        ("my-project/3", "my-project--3"),
        ("plain_name.v2", "plain_name.v2"),
    ],
)
def test_model_names_replace_slashes(model_id: str, name: str) -> None:
    assert triton_model_name(model_id) == name


def test_model_names_that_could_collide_get_a_digest() -> None:
    names = {triton_model_name(i) for i in ("a/b", "a--b", "a b", "a_b", "a:b", ".hidden")}
    assert len(names) == 6
    assert all(" " not in n and ":" not in n and not n.startswith(".") for n in names)
    with pytest.raises(InvalidArgument):
        triton_model_name("")


def test_python_repository_config(tmp_path: Path) -> None:
    spec = get_model(TEXT_DETECTOR)
    (folder,) = write_repository([spec], tmp_path / "repo", execution_env="/opt/triton-env")
    assert folder == tmp_path / "repo" / "sluice--text-detector"
    config = parse_config(folder)
    assert config.name == "sluice--text-detector"
    assert config.backend == "python"
    assert config.max_batch_size == spec.max_batch
    (model_input,) = config.input
    assert (model_input.name, model_input.data_type, list(model_input.dims)) == (
        "x",
        model_config_pb2.TYPE_FP32,
        [3, -1, -1],
    )
    (output,) = config.output
    assert output.data_type == model_config_pb2.TYPE_FP32 and list(output.dims) == [1, -1, -1]
    assert config.HasField("dynamic_batching")
    assert [(g.count, g.kind) for g in config.instance_group] == [
        (1, model_config_pb2.ModelInstanceGroup.KIND_CPU)
    ]
    onnx_file = config.parameters["onnx_file"].string_value
    assert config.parameters["EXECUTION_ENV_PATH"].string_value == "/opt/triton-env"
    assert sorted(p.name for p in (folder / "1").iterdir()) == sorted([onnx_file, "model.py"])
    assert (folder / "1" / onnx_file).read_bytes() == spec.path.read_bytes()
    assert (folder / "1" / "model.py").read_text() == PYTHON_MODEL.read_text()


def test_onnxruntime_repository_config(tmp_path: Path) -> None:
    spec = get_model(TEXT_DETECTOR)
    repo = tmp_path / "repo"
    write_repository([spec], repo)  # a python repository first: its model.py must not linger
    (folder,) = write_repository([spec], repo, kind="onnxruntime")
    config = parse_config(folder)
    assert config.backend == "onnxruntime"
    assert config.default_model_filename == "model.onnx"
    assert config.max_batch_size == spec.max_batch
    assert config.HasField("dynamic_batching")
    assert [g.kind for g in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_AUTO]
    assert "onnx_file" not in config.parameters
    assert [p.name for p in (folder / "1").iterdir()] == ["model.onnx"]
    with pytest.raises(InvalidArgument, match="python-onnxruntime"):
        write_repository([spec], repo, kind="onnxruntime", execution_env="/opt/env")


def test_a_fixed_batch_model_does_not_batch(tmp_path: Path) -> None:
    spec = tiny_spec(tiny_model(tmp_path / "fixed.onnx", batch=1))
    (folder,) = write_repository([spec], tmp_path / "repo")
    config = parse_config(folder)
    assert config.max_batch_size == 0
    assert not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [1, 3, 4, 4]
    assert list(config.output[0].dims) == [1, 3, 4, 4]


def test_models_that_cannot_be_served_are_refused(tmp_path: Path) -> None:
    two_inputs = tiny_spec(tiny_model(tmp_path / "two.onnx", inputs=2))
    with pytest.raises(InvalidArgument, match="2 inputs"):
        write_repository([two_inputs], tmp_path / "repo")
    missing = tiny_spec(tmp_path / "missing.onnx")
    with pytest.raises(NotFound, match="missing"):
        write_repository([missing], tmp_path / "repo")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(InvalidArgument, match="cannot read"):
        write_repository([tiny_spec(tmp_path / "junk.onnx")], tmp_path / "repo")
    spec = tiny_spec(tiny_model(tmp_path / "ok.onnx"))
    with pytest.raises(InvalidArgument, match="twice"):
        write_repository([spec, spec], tmp_path / "repo")
    with pytest.raises(InvalidArgument, match="kind"):
        write_repository([spec], tmp_path / "repo", kind="tensorrt")  # type: ignore[arg-type]


def test_the_python_model_imports_nothing_from_sluice() -> None:
    """model.py runs in the Triton server's own environment, where Sluice is not installed."""
    tree = ast.parse(PYTHON_MODEL.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        (node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    }
    assert imported <= {
        "__future__",
        "itertools",
        "json",
        "os",
        "typing",
        "numpy",
        "onnxruntime",
        "triton_python_backend_utils",
    }


def export_parser() -> argparse.ArgumentParser:
    """`sluice models` with only the export verb (sluice.cli.main adds it beside the others)."""
    parser = argparse.ArgumentParser(prog="sluice")
    connection = argparse.ArgumentParser(add_help=False)
    add_connection_options(connection)
    models = parser.add_subparsers(dest="command").add_parser("models").add_subparsers(dest="verb")
    register_export(models, [connection])
    return parser


def test_export_command_writes_a_repository_for_built_in_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "repo"
    args = export_parser().parse_args(
        [
            "models",
            "export-triton",
            "--model-id",
            TEXT_DETECTOR,
            "--target-dir",
            str(target),
            "--backend",
            "onnxruntime",
        ]
    )
    assert args.func(args) == 0
    assert parse_config(target / "sluice--text-detector").backend == "onnxruntime"
    assert "sluice--text-detector" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        export_parser().parse_args(["models", "export-triton", "--target-dir", str(target)])


def test_worker_runs_models_on_triton_when_given_an_address(monkeypatch: pytest.MonkeyPatch) -> None:
    from sluice_worker.__main__ import inference_backend, parse_args

    monkeypatch.delenv("SLUICE_TRITON_URL", raising=False)
    options = parse_args(["--ort-threads", "2"])
    assert options.triton_url is None
    backend = inference_backend(options)
    assert isinstance(backend, OnnxRuntimeBackend) and backend.intra_op_threads == 2
    options = parse_args(["--triton-url", "triton:8001"])
    backend = inference_backend(options)
    assert isinstance(backend, TritonBackend) and backend.url == "triton:8001"
    monkeypatch.setenv("SLUICE_TRITON_URL", "10.0.0.5:8001")
    assert parse_args([]).triton_url == "10.0.0.5:8001"
    assert parse_args(["--triton-url", "other:8001"]).triton_url == "other:8001"
    with pytest.raises(SystemExit):
        parse_args(["--triton-url", "grpc://triton:8001"])


def test_the_process_backend_can_be_set_and_reset() -> None:
    backend = TritonBackend("127.0.0.1:1")
    set_backend(backend)
    try:
        assert get_backend() is backend
    finally:
        reset_backend()
    assert isinstance(get_backend(), OnnxRuntimeBackend)


def test_triton_backend_refuses_bad_addresses() -> None:
    for url in ("", "http://host:8001"):
        with pytest.raises(InvalidArgument):
            TritonBackend(url)
    with pytest.raises(InvalidArgument):
        TritonBackend("host:8001", timeout_s=0)


def test_no_server_at_the_address_is_unavailable() -> None:
    backend = TritonBackend(f"127.0.0.1:{free_port()}", timeout_s=5)
    with pytest.raises(Unavailable, match=rf"Triton server {backend.url} is unreachable"):
        backend.run(get_model(TEXT_DETECTOR), np.zeros((1, 3, 32, 32), np.float32))


class FakeTensor:
    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name = name
        self.array = array

    def as_numpy(self) -> np.ndarray:
        return self.array


class FakeResponse:
    def __init__(self, output_tensors: list[FakeTensor] | None = None, error: object = None) -> None:
        self.output_tensors = output_tensors or []
        self.error = error


class FakeError:
    def __init__(self, message: str) -> None:
        self.message = message


def load_python_model(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The shipped model.py, imported with a stand-in for Triton's triton_python_backend_utils."""
    utils = types.ModuleType("triton_python_backend_utils")
    utils.Tensor = FakeTensor  # type: ignore[attr-defined]
    utils.InferenceResponse = FakeResponse  # type: ignore[attr-defined]
    utils.TritonError = FakeError  # type: ignore[attr-defined]
    utils.get_input_tensor_by_name = lambda request, name: FakeTensor(name, request[name])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", utils)
    found = importlib.util.spec_from_file_location("sluice_triton_model_under_test", PYTHON_MODEL)
    assert found is not None and found.loader is not None
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    return module


def test_the_python_model_runs_requests_together_when_it_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_python_model(monkeypatch)
    (folder,) = write_repository([tiny_spec(tiny_model(tmp_path / "tiny.onnx"))], tmp_path / "repo")
    config = text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    model = module.TritonPythonModel()
    model.initialize(
        {
            "model_config": json_format.MessageToJson(config, preserving_proto_field_name=True),
            "model_repository": str(folder),
            "model_version": "1",
        }
    )
    calls: list[tuple[int, ...]] = []
    run = model.session.run

    def counted(names: list[str], feed: dict[str, np.ndarray]) -> Any:
        calls.append(feed["x0"].shape)
        return run(names, feed)

    monkeypatch.setattr(model.session, "run", counted)
    rng = np.random.default_rng(0)
    inputs = [rng.random((n, 3, 4, 4), dtype=np.float32) for n in (1, 2, 1)]
    responses = model.execute([{"x0": x} for x in inputs])
    assert calls == [(4, 3, 4, 4)]  # one model call for the three requests
    for x, response in zip(inputs, responses, strict=True):
        assert response.error is None
        (tensor,) = response.output_tensors
        assert tensor.name == "y"
        np.testing.assert_array_equal(tensor.array, x * 2)

    calls.clear()
    bad = np.zeros((1, 3, 5, 5), np.float32)
    responses = model.execute([{"x0": inputs[0]}, {"x0": bad}])
    assert calls == [(1, 3, 4, 4), (1, 3, 5, 5)]  # shapes differ: one by one
    np.testing.assert_array_equal(responses[0].output_tensors[0].array, inputs[0] * 2)
    assert responses[1].error is not None and responses[1].output_tensors == []
    model.finalize()


class FakeModelService(models_pb2_grpc.ModelServiceServicer):
    """A model registry holding fixed models (the staging service's own tests cover the real one)."""

    def __init__(self, models: dict[str, models_pb2.Model]) -> None:
        self.models = models
        self.metadata: list[dict[str, str]] = []

    def GetModel(
        self, request: models_pb2.GetModelRequest, context: grpc.ServicerContext
    ) -> models_pb2.Model:
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})
        if request.model_id not in self.models:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model '{request.model_id}'")
        return self.models[request.model_id]


def test_export_command_fetches_registered_models_from_the_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx_file = tiny_model(tmp_path / "stored.onnx")
    spec = tiny_spec(onnx_file, "shop/tiny")
    service = FakeModelService(
        {
            "shop/tiny": models_pb2.Model(
                model_id="shop/tiny", task=spec.task, spec_json=spec_to_json(spec), url=f"file://{onnx_file}"
            )
        }
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    models_pb2_grpc.add_ModelServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        target = tmp_path / "repo"
        connection = ["--api-key", "sk_test", "--staging-address", f"127.0.0.1:{port}"]
        args = export_parser().parse_args(
            [
                "models",
                "export-triton",
                "-m",
                "shop/tiny",
                "-m",
                TEXT_DETECTOR,
                "-t",
                str(target),
                *connection,
            ]
        )
        assert args.func(args) == 0
        config = parse_config(target / "shop--tiny")
        assert config.max_batch_size == spec.max_batch and config.backend == "python"
        stored = target / "shop--tiny" / "1" / config.parameters["onnx_file"].string_value
        assert stored.read_bytes() == onnx_file.read_bytes()
        assert (target / "sluice--text-detector" / "config.pbtxt").is_file()  # built in: no registry call
        assert len(service.metadata) == 1 and "sk_test" in service.metadata[0].values()
        assert "shop/tiny -> " in capsys.readouterr().out

        args = export_parser().parse_args(
            ["models", "export-triton", "-m", "shop/none", "-t", str(target), *connection]
        )
        with pytest.raises(grpc.RpcError) as raised:
            args.func(args)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        server.stop(None)


@pytest.mark.parametrize(
    ("max_batch_size", "fixed_batch", "step"),
    [(4, None, 4), (0, 1, 1), (0, None, None)],
)
def test_requests_carry_at_most_what_the_model_takes(
    max_batch_size: int, fixed_batch: int | None, step: int | None
) -> None:
    info = TritonModelInfo("m", "x", "FP32", ("y",), max_batch_size, fixed_batch)
    assert info.step == step
