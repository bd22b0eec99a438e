"""`python -m sluice_worker`: run a worker until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence

from sluice import runtime
from sluice.config import Settings
from sluice.models.backends import InferenceBackend
from sluice.models.backends.current import set_backend
from sluice.models.backends.onnxruntime_backend import OnnxRuntimeBackend
from sluice.models.backends.triton_backend import TritonBackend
from sluice_worker.options import (
    ADAPTIVE_BATCH,
    DEFAULT_BATCH_SIZES,
    MACHINE_TYPES,
    WorkerOptions,
    default_worker_id,
)
from sluice_worker.threads import choose_ort_threads
from sluice_worker.worker import Worker


def parse_args(argv: Sequence[str] | None = None) -> WorkerOptions:
    parser = argparse.ArgumentParser(prog="sluice-worker", description=__doc__)
    parser.add_argument("--machine-type", choices=sorted(MACHINE_TYPES), default="cpu")
    parser.add_argument(
        "--workers-per-machine", type=int, default=2, help="task slots run at once (default 2)"
    )
    parser.add_argument(
        "--health-address", default="127.0.0.1:0", help="host:port of the gRPC health service"
    )
    parser.add_argument(
        "--ort-threads",
        type=int,
        default=None,
        help="ONNX Runtime intra-op threads per model session (default: the usable CPUs, the "
        "container's quota included, divided among the slots; at least 1)",
    )
    parser.add_argument(
        "--triton-url",
        default=os.environ.get("SLUICE_TRITON_URL") or None,
        help="host:port of a Triton Inference Server (gRPC) to run models on, instead of ONNX Runtime "
        "in this process (default: $SLUICE_TRITON_URL)",
    )
    parser.add_argument("--worker-id", default=None)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images of a task per workflow run (default: "
        + ", ".join(
            f"{size} on {kind}" + (", more for a near-free workflow" if ADAPTIVE_BATCH[kind] else "")
            for kind, size in DEFAULT_BATCH_SIZES.items()
        )
        + ")",
    )
    args = parser.parse_args(argv)
    if args.workers_per_machine < 1:
        parser.error("--workers-per-machine must be at least 1")
    if args.ort_threads is not None and args.ort_threads < 1:
        parser.error("--ort-threads must be at least 1")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.triton_url is not None and (not args.triton_url or "://" in args.triton_url):
        parser.error("--triton-url must be host:port (gRPC), e.g. triton:8001")
    return WorkerOptions(
        machine_type=args.machine_type,
        slots=args.workers_per_machine,
        health_address=args.health_address or None,
        ort_threads=args.ort_threads,
        triton_url=args.triton_url,
        worker_id=args.worker_id or default_worker_id(),
        batch_size=args.batch_size or 0,
    )


def inference_backend(options: WorkerOptions) -> InferenceBackend:
    """Where this worker's models run: Triton when an address is given, else ONNX Runtime with
    the worker's intra-op threads per session (`--ort-threads`, else chosen from the slots)."""
    if options.triton_url:
        return TritonBackend(options.triton_url)
    return OnnxRuntimeBackend(choose_ort_threads(options.ort_threads, options.slots).per_session)


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    settings = Settings.from_env()
    set_backend(inference_backend(options))

    async def serve(stop: asyncio.Event) -> None:
        await Worker(settings, options).run(stop)

    runtime.run(serve, settings.log_level)


if __name__ == "__main__":
    main()
