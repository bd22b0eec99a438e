"""Is a part of the stack ready: NATS greets, Postgres accepts, a service's gRPC health says SERVING."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sluice.stack.nats_process import nats_ready
from sluice.stack.ports import LOOPBACK
from sluice.stack.postgres_process import postgres_ready


def grpc_serving(address: str, timeout_s: float = 1.0) -> bool:
    """Whether the server at `address` reports its overall health ("") as SERVING."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def part_ready(part: str, port: int) -> bool:
    """Whether `part` listening on loopback `port` is ready to serve."""
    if port <= 0:
        return False
    if part == "nats":
        return nats_ready(port)
    if part == "postgres":
        return postgres_ready(port)
    return grpc_serving(f"{LOOPBACK}:{port}")
