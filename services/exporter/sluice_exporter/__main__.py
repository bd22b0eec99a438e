"""Entry point: `sluice-exporter [--slots N] [--health-address host:port]`."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from sluice import messaging, runtime
from sluice.auth import KeyRing
from sluice.config import Settings
from sluice.grpc_server import start_server, stop_server
from sluice_exporter.service import serve_exports


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sluice-exporter", description="Run the export stage of Sluice jobs."
    )
    parser.add_argument("--slots", type=int, default=1, help="export tasks run at once (default 1)")
    parser.add_argument(
        "--health-address",
        default=None,
        metavar="HOST:PORT",
        help="serve gRPC health checking here (none by default)",
    )
    parser.add_argument("--worker-id", default=None, help="the id in heartbeats and results")
    args = parser.parse_args(argv)
    if args.slots < 1:
        parser.error("--slots must be at least 1")
    return args


async def serve(stop: asyncio.Event, settings: Settings, args: argparse.Namespace) -> None:
    """Serve health (when asked) and export tasks until `stop` is set, then drain."""
    health_server = None
    if args.health_address:
        keys = KeyRing(settings.api_keys_file, settings.internal_token)
        health_server = await start_server([], args.health_address, keys)
    nc = await messaging.connect(
        settings.nats_url, "sluice-exporter", settings.nats_user, settings.nats_password
    )
    try:
        await serve_exports(nc, stop, slots=args.slots, worker_id=args.worker_id)
    finally:
        await nc.drain()
        if health_server is not None:
            server, health_servicer, _ = health_server
            await stop_server(server, health_servicer)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    settings = Settings.from_env()

    async def run(stop: asyncio.Event) -> None:
        await serve(stop, settings, args)

    runtime.run(run, settings.log_level)


if __name__ == "__main__":
    main()
