"""`python -m sluice_worker`: run a worker until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from sluice import runtime
from sluice.config import Settings
from sluice_worker.options import MACHINE_TYPES, WorkerOptions, default_worker_id
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
    parser.add_argument("--ort-threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    parser.add_argument("--worker-id", default=None)
    parser.add_argument("--batch-size", type=int, default=8, help="images per workflow run")
    args = parser.parse_args(argv)
    if args.workers_per_machine < 1:
        parser.error("--workers-per-machine must be at least 1")
    if args.ort_threads is not None and args.ort_threads < 1:
        parser.error("--ort-threads must be at least 1")
    return WorkerOptions(
        machine_type=args.machine_type,
        slots=args.workers_per_machine,
        health_address=args.health_address or None,
        ort_threads=args.ort_threads,
        worker_id=args.worker_id or default_worker_id(),
        batch_size=args.batch_size,
    )


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    settings = Settings.from_env()

    async def serve(stop: asyncio.Event) -> None:
        await Worker(settings, options).run(stop)

    runtime.run(serve, settings.log_level)


if __name__ == "__main__":
    main()
