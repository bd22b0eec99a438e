"""`sluice models ...`: register ONNX models by id, list them, show one.

The model registry is served by the staging process, so these commands talk to the staging
address. Other modules add verbs under `sluice models` with `add_model_subcommand` (before the
parser is built) or through the group `register` returns.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.cli.commands import command_help
from sluice.cli.context import Connection, connection
from sluice.cli.output import (
    add_output_option,
    fields,
    human_bytes,
    message_document,
    print_json,
    print_messages,
    table,
    wants_json,
    when,
)
from sluice.errors import InvalidArgument
from sluice.models.model_ids import MODEL_ID_RULE, validate_model_id
from sluice.models.spec import CHANNEL_ORDERS, OUTPUT_LAYOUTS, RESIZE_MODES, TASKS
from sluice.models.stored import MAX_MODEL_BYTES
from sluice.v1 import models_pb2

if TYPE_CHECKING:
    from tqdm import tqdm

    from sluice.v1 import models_pb2_grpc

CHUNK_BYTES = 1024 * 1024

Subcommand = Callable[[argparse._SubParsersAction, list[argparse.ArgumentParser]], None]
_extra_subcommands: list[Subcommand] = []


def add_model_subcommand(add: Subcommand) -> None:
    """Have `add(verbs, parents)` add a verb under `sluice models` when the parser is built."""
    _extra_subcommands.append(add)


def _stub(conn: Connection) -> models_pb2_grpc.ModelServiceStub:
    from sluice.clients import channel
    from sluice.v1 import models_pb2_grpc

    return models_pb2_grpc.ModelServiceStub(channel(conn.staging_address))


def _numbers(text: str, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise InvalidArgument(f"{option} takes three numbers separated by commas, e.g. 0.485,0.456,0.406")
    return values


def _input_size(text: str) -> list[int] | None:
    if text.lower() in ("dynamic", "any"):
        return None
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) < 1 or int(height) < 1:
        raise InvalidArgument(f"--input-size takes WIDTHxHEIGHT (e.g. 640x640) or 'dynamic', not {text!r}")
    return [int(width), int(height)]


def _lines(path: Path, option: str) -> list[str]:
    if not path.is_file():
        raise InvalidArgument(f"{option}: {path} does not exist or is not a file")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _spec_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    if not path.is_file():
        raise InvalidArgument(f"--spec-file: {path} does not exist or is not a file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InvalidArgument(f"--spec-file {path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"--spec-file {path} must hold a JSON object")
    return data


def spec_dict_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The spec's JSON object: --spec-file's, with every option given on the command line over it."""
    data = _spec_file(args.spec_file)
    if args.class_names and args.class_names_file:
        raise InvalidArgument("give --class-names or --class-names-file, not both")
    given: dict[str, Any] = {
        "task": args.task,
        "output_layout": args.output_layout,
        "resize_mode": args.resize,
        "channel_order": args.channel_order,
        "scale": args.scale,
        "default_confidence": args.confidence,
        "default_iou": args.iou,
        "max_batch": args.max_batch,
    }
    if args.class_names:
        given["class_names"] = [n.strip() for n in args.class_names.split(",") if n.strip()]
    if args.class_names_file:
        given["class_names"] = _lines(args.class_names_file, "--class-names-file")
    if args.input_size:
        given["input_size"] = _input_size(args.input_size)
    if args.mean:
        given["mean"] = _numbers(args.mean, "--mean")
    if args.std:
        given["std"] = _numbers(args.std, "--std")
    if args.charset_file:
        given["ctc"] = {**data.get("ctc", {}), "charset": _lines(args.charset_file, "--charset-file")}
    data.update({k: v for k, v in given.items() if v is not None})
    data["model_id"] = args.model_id
    return data


def _chunks(
    model_id: str, spec_json: str, path: Path, progress: tqdm
) -> Iterator[models_pb2.RegisterModelChunk]:
    with path.open("rb") as f:
        first = True
        while True:
            data = f.read(CHUNK_BYTES)
            if first:
                yield models_pb2.RegisterModelChunk(model_id=model_id, spec_json=spec_json, data=data)
                first = False
            elif data:
                yield models_pb2.RegisterModelChunk(data=data)
            progress.update(len(data))
            if len(data) < CHUNK_BYTES:
                return


def register_model(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sluice.models.spec_json import spec_from_dict, spec_to_json

    model_id = validate_model_id(args.model_id)
    path: Path = args.file
    if not path.is_file():
        raise InvalidArgument(f"model file {path} does not exist or is not a file")
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise InvalidArgument(f"model file {path} is {human_bytes(size)}; the registry takes at most 2 GiB")
    spec = spec_from_dict(spec_dict_from_args(args), model_id=model_id)
    conn = connection(args)
    with tqdm(total=size, unit="B", unit_scale=True, desc="uploading", leave=False, disable=None) as progress:
        model = _stub(conn).RegisterModel(
            _chunks(model_id, spec_to_json(spec), path, progress), metadata=conn.metadata
        )
    layout = json.loads(model.spec_json).get("output_layout", "?")
    print(
        f"model {model.model_id} registered: {model.task} ({layout}), "
        f"{human_bytes(model.size_bytes)}, sha256 {model.sha256[:12]}"
    )
    return 0


def _summary(model: models_pb2.Model) -> tuple[object, ...]:
    spec = json.loads(model.spec_json or "{}")
    classes = len(spec.get("class_names") or []) or "-"
    created = "built-in" if model.built_in else when(model.created_at)
    return (
        model.model_id,
        model.task,
        spec.get("output_layout", "?"),
        classes,
        human_bytes(model.size_bytes),
        created,
    )


def list_models(args: argparse.Namespace) -> int:
    conn = connection(args)
    models = _stub(conn).ListModels(models_pb2.ListModelsRequest(), metadata=conn.metadata).models
    if wants_json(args):
        print_messages(models)
        return 0
    if not models:
        print("no models")
        return 0
    print(table(["MODEL", "TASK", "LAYOUT", "CLASSES", "SIZE", "CREATED"], [_summary(m) for m in models]))
    return 0


def show_model(args: argparse.Namespace) -> int:
    conn = connection(args)
    model = _stub(conn).GetModel(models_pb2.GetModelRequest(model_id=args.model_id), metadata=conn.metadata)
    if wants_json(args):
        print_json(message_document(model))
        return 0
    print(
        fields(
            [
                ("model id", model.model_id),
                ("task", model.task),
                ("size", human_bytes(model.size_bytes)),
                ("sha256", model.sha256 or "-"),
                ("created", "built-in" if model.built_in else when(model.created_at)),
                *([("url", model.url)] if model.url else []),
            ]
        )
    )
    print()
    print(json.dumps(json.loads(model.spec_json), indent=2, ensure_ascii=False))
    return 0


def register(
    sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> argparse._SubParsersAction:
    """Add `sluice models` and its verbs; returns the verbs group (for verbs added elsewhere)."""
    verbs = sub.add_parser("models", help=command_help("models")).add_subparsers(
        dest="verb", required=True, metavar="VERB"
    )
    p = verbs.add_parser(
        "register",
        parents=parents,
        help="register an ONNX model under an id (registering an id again replaces it)",
        description="Register an ONNX model. Options not given take the output layout's defaults; "
        "--spec-file gives a whole spec as JSON, and options given override its fields.",
    )
    p.add_argument("--model-id", "-m", required=True, help=MODEL_ID_RULE)
    p.add_argument("--file", "-f", type=Path, required=True, help="the ONNX file")
    p.add_argument("--task", "-t", choices=TASKS, help="what the model does (required unless in --spec-file)")
    p.add_argument("--output-layout", choices=OUTPUT_LAYOUTS, help="how to read its output (default by task)")
    p.add_argument("--class-names", help="class names in output order, comma separated")
    p.add_argument("--class-names-file", type=Path, help="class names in output order, one per line")
    p.add_argument("--input-size", help="WIDTHxHEIGHT of the model input, or 'dynamic'")
    p.add_argument("--resize", choices=RESIZE_MODES, help="how images are fitted to the input")
    p.add_argument("--mean", help="per-channel mean of pixel * scale, e.g. 0.485,0.456,0.406")
    p.add_argument("--std", help="per-channel std of pixel * scale, e.g. 0.229,0.224,0.225")
    p.add_argument("--scale", type=float, help="pixel multiplier before mean and std (default 1/255)")
    p.add_argument("--channel-order", choices=CHANNEL_ORDERS, help="channel order the model expects")
    p.add_argument("--confidence", type=float, help="default confidence threshold")
    p.add_argument("--iou", type=float, help="default IoU threshold of non-maximum suppression")
    p.add_argument("--max-batch", type=int, help="most images per forward pass")
    p.add_argument(
        "--charset-file", type=Path, help="ocr-recognition: characters of classes 1.., one per line"
    )
    p.add_argument("--spec-file", type=Path, help="a spec as JSON (options given override its fields)")
    p.set_defaults(func=register_model)

    p = verbs.add_parser("list", parents=parents, help="list built-in and registered models")
    add_output_option(p)
    p.set_defaults(func=list_models)

    p = verbs.add_parser("show", parents=parents, help="show a model and its spec")
    p.add_argument("--model-id", "-m", required=True)
    add_output_option(p)
    p.set_defaults(func=show_model)

    for add in _extra_subcommands:
        add(verbs, parents)
    return verbs
