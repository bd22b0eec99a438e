"""Where the CLI finds the services and which API key it presents.

Building the parser imports only this module's argparse part; the gRPC stubs and the local stack's
credentials are imported by the verbs that connect (a fast `sluice --help`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sluice.v1 import scheduler_pb2_grpc, staging_pb2_grpc


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("--api-key", help="API key (default: $SLUICE_API_KEY, else the local stack's key)")
    group.add_argument(
        "--state-dir", type=Path, help="local stack folder (default: $SLUICE_HOME or ./.sluice)"
    )
    group.add_argument("--staging-address", help="staging host:port (default: the local stack's)")
    group.add_argument("--scheduler-address", help="scheduler host:port (default: the local stack's)")


@dataclass(frozen=True)
class Connection:
    api_key: str
    staging_address: str
    scheduler_address: str

    @property
    def metadata(self) -> Sequence[tuple[str, str]]:
        from sluice.clients import user_metadata

        return user_metadata(self.api_key)

    def staging(self) -> staging_pb2_grpc.StagingServiceStub:
        from sluice.clients import channel, staging_stub

        return staging_stub(channel(self.staging_address))

    def scheduler(self) -> scheduler_pb2_grpc.SchedulerServiceStub:
        from sluice.clients import channel, scheduler_stub

        return scheduler_stub(channel(self.scheduler_address))


def connection(args: argparse.Namespace) -> Connection:
    """Flags first, then SLUICE_* variables, then the local stack's credentials file."""
    from sluice.errors import Unauthenticated
    from sluice.stack.state import default_state_dir, load_credentials

    state_dir = getattr(args, "state_dir", None) or default_state_dir()
    local = load_credentials(state_dir) if (state_dir / "credentials.json").exists() else {}
    api_key = args.api_key or os.environ.get("SLUICE_API_KEY") or local.get("api_key", "")
    if not api_key:
        raise Unauthenticated(
            "no API key: pass --api-key, set SLUICE_API_KEY, or start the local stack with 'sluice up'"
        )
    return Connection(
        api_key=api_key,
        staging_address=args.staging_address
        or os.environ.get("SLUICE_STAGING_ADDRESS")
        or local.get("staging_address", "127.0.0.1:50051"),
        scheduler_address=args.scheduler_address
        or os.environ.get("SLUICE_SCHEDULER_ADDRESS")
        or local.get("scheduler_address", "127.0.0.1:50052"),
    )
