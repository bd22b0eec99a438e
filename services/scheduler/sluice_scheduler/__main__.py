"""`sluice-scheduler`: the scheduler service process."""

from __future__ import annotations

import argparse
import asyncio
import os

from sluice import runtime
from sluice.config import Settings
from sluice.webhooks import DeliveryPolicy
from sluice_scheduler.coordinator import SchedulerOptions


def main(argv: list[str] | None = None) -> None:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="sluice-scheduler", description=__doc__)
    parser.add_argument("--address", default=settings.scheduler_address, help="host:port to serve gRPC on")
    parser.add_argument(
        "--task-size",
        type=int,
        default=int(os.environ.get("SLUICE_TASK_SIZE", "50")),
        help="images per task",
    )
    parser.add_argument(
        "--backlog-address",
        default=os.environ.get("SLUICE_BACKLOG_ADDRESS") or None,
        help="host:port to serve GET /backlog on (tasks wanting a slot per machine type, for "
        "autoscalers; default: not served)",
    )
    args = parser.parse_args(argv)
    options = SchedulerOptions(
        task_size=max(1, args.task_size),
        backlog_address=args.backlog_address,
        webhooks=DeliveryPolicy.from_env(),
    )

    from sluice_scheduler.service import serve

    async def run(stop: asyncio.Event) -> None:
        await serve(settings, args.address, options, stop)

    runtime.run(run, settings.log_level)


if __name__ == "__main__":
    main()
