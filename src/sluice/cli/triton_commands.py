"""`sluice models export-triton`: write a Triton model repository for models by id.

Built-in models come from this machine's registry; any other id is asked of the model registry
(staging's ModelService), whose ONNX file is read from the object store.
"""

from __future__ import annotations

import argparse
import posixpath
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.cli.context import connection
from sluice.errors import FailedPrecondition

if TYPE_CHECKING:
    from sluice.models.spec import ModelSpec
    from sluice.models.triton_repository import RepositoryKind

# What --backend takes: sluice.models.triton_repository.KINDS (tests/test_cli_imports.py checks
# they agree), written out so that building the parser does not import NumPy and ONNX.
BACKENDS = ("python-onnxruntime", "onnxruntime")


def _registered_spec(args: argparse.Namespace, model_id: str, folder: Path) -> ModelSpec:
    """A user model from the registry, its ONNX file fetched into `folder`."""
    from sluice import storage
    from sluice.clients import channel
    from sluice.models.backends.triton_backend import triton_model_name
    from sluice.models.registry import get_model
    from sluice.models.spec_json import spec_from_json
    from sluice.v1 import models_pb2, models_pb2_grpc

    conn = connection(args)
    stub = models_pb2_grpc.ModelServiceStub(channel(conn.staging_address))
    model = stub.GetModel(models_pb2.GetModelRequest(model_id=model_id), metadata=conn.metadata)
    if model.built_in:
        return get_model(model_id)
    if not model.url:
        raise FailedPrecondition(f"model {model_id!r}: the registry holds no file for it")
    path = folder / f"{triton_model_name(model_id)}.onnx"
    model_folder, file_name = posixpath.split(model.url)
    path.write_bytes(storage.read_bytes(model_folder, file_name))
    return spec_from_json(model.spec_json, path=path, model_id=model_id)


def export_triton(args: argparse.Namespace) -> int:
    from sluice.models.registry import get_model, is_built_in
    from sluice.models.triton_repository import write_repository

    kind: RepositoryKind = args.backend
    target: Path = args.target_dir
    with tempfile.TemporaryDirectory(prefix="sluice-export-") as scratch:
        specs = [
            get_model(model_id) if is_built_in(model_id) else _registered_spec(args, model_id, Path(scratch))
            for model_id in dict.fromkeys(args.model_ids)
        ]
        written = write_repository(specs, target, kind, args.execution_env)
    for spec, folder in zip(specs, written, strict=True):
        print(f"{spec.model_id} -> {folder}")
    print(f"Triton model repository ({kind}): {target}")
    return 0


def register_export(
    models_subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Add `export-triton` to the verbs of `sluice models`."""
    parser = models_subparsers.add_parser(
        "export-triton",
        parents=parents,
        help="write a Triton model repository for models",
        description=__doc__,
    )
    parser.add_argument(
        "--model-id", "-m", dest="model_ids", action="append", required=True, help="a model id (repeat)"
    )
    parser.add_argument("--target-dir", "-t", type=Path, required=True, help="the repository folder")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="python-onnxruntime",
        help="Triton's python backend running ONNX Runtime on CPU (default), or Triton's own "
        "onnxruntime backend (a GPU fleet's Triton)",
    )
    parser.add_argument(
        "--execution-env",
        default=None,
        help="python-onnxruntime only: a Python environment folder or .tar.gz (numpy<2, onnxruntime) "
        "for the server to run model.py in (EXECUTION_ENV_PATH)",
    )
    parser.set_defaults(func=export_triton)
