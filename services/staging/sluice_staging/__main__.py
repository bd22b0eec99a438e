"""`sluice-staging`: the staging service process."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
from collections.abc import Sequence
from datetime import timedelta

from sluice import runtime
from sluice.config import Settings
from sluice.webhooks import DeliveryPolicy
from sluice_staging.batches import DEFAULT_PART_SIZE, DEFAULT_TTL, MAX_TTL
from sluice_staging.expiry import DEFAULT_SWEEP_S
from sluice_staging.server import start
from sluice_staging.servicer import StagingOptions


def _batch_ttl(value: str) -> timedelta:
    """SLUICE_BATCH_TTL_DAYS: days (fractions allowed) a batch is kept after it is created."""
    if not value:
        return DEFAULT_TTL
    try:
        days = float(value)
    except ValueError:
        days = -1.0
    if not math.isfinite(days) or days <= 0 or days > MAX_TTL.days:
        raise SystemExit(
            f"SLUICE_BATCH_TTL_DAYS must be a positive number of days, at most {MAX_TTL.days}, not {value!r}"
        )
    return timedelta(days=days)


def _sweep_every(value: str) -> float:
    """SLUICE_EXPIRY_SWEEP_S: seconds between two sweeps for expired batches (0: no sweeping)."""
    if not value:
        return DEFAULT_SWEEP_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise SystemExit(f"SLUICE_EXPIRY_SWEEP_S must be a number of seconds (0: never), not {value!r}")
    return seconds


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def parse_args(argv: Sequence[str] | None, settings: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sluice-staging", description=__doc__)
    parser.add_argument(
        "--address",
        default=settings.staging_address,
        help="host:port to listen on (default: SLUICE_STAGING_ADDRESS or %(default)s)",
    )
    parser.add_argument(
        "--part-size",
        type=_positive,
        default=DEFAULT_PART_SIZE,
        help="objects per part of a batch (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    settings = Settings.from_env()
    args = parse_args(argv, settings)
    options = StagingOptions(
        part_size=args.part_size,
        batch_ttl=_batch_ttl(os.environ.get("SLUICE_BATCH_TTL_DAYS", "")),
        expiry_sweep_s=_sweep_every(os.environ.get("SLUICE_EXPIRY_SWEEP_S", "")),
        webhooks=DeliveryPolicy.from_env(),
    )

    async def serve(stop: asyncio.Event) -> None:
        running = await start(settings, args.address, options)
        try:
            await stop.wait()
        finally:
            await running.stop()

    runtime.run(serve, settings.log_level)


if __name__ == "__main__":
    main()
