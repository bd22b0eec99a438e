"""gRPC channels to the services, carrying an API key or the internal token and a workspace."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from sluice.auth_headers import API_KEY_HEADER, INTERNAL_TOKEN_HEADER, WORKSPACE_HEADER
from sluice.v1 import scheduler_pb2_grpc, staging_pb2_grpc

_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


def user_metadata(api_key: str) -> Sequence[tuple[str, str]]:
    return ((API_KEY_HEADER, api_key),)


def internal_metadata(token: str, workspace: str) -> Sequence[tuple[str, str]]:
    return ((INTERNAL_TOKEN_HEADER, token), (WORKSPACE_HEADER, workspace))


def channel(address: str) -> grpc.Channel:
    """A blocking channel (the CLI)."""
    return grpc.insecure_channel(address, options=_OPTIONS)


def aio_channel(address: str) -> grpc.aio.Channel:
    """An asyncio channel (the services)."""
    return grpc.aio.insecure_channel(address, options=_OPTIONS)


def staging_stub(ch: grpc.Channel | grpc.aio.Channel) -> staging_pb2_grpc.StagingServiceStub:
    return staging_pb2_grpc.StagingServiceStub(ch)


def scheduler_stub(ch: grpc.Channel | grpc.aio.Channel) -> scheduler_pb2_grpc.SchedulerServiceStub:
    return scheduler_pb2_grpc.SchedulerServiceStub(ch)
