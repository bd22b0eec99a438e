"""Is a part of the stack ready: NATS greets, Postgres accepts, a service's gRPC health says SERVING."""

from __future__ import annotations

import urllib.error
import urllib.request

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


def http_healthy(address: str, path: str = "/_stcore/health", timeout_s: float = 1.0) -> bool:
    """Whether GET http://`address``path` answers 200 (the dashboard's Streamlit health check)."""
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout_s) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def part_ready(part: str, port: int) -> bool:
    """Whether `part` listening on loopback `port` is ready to serve."""
    if port <= 0:
        return False
    if part == "nats":
        return nats_ready(port)
    if part == "postgres":
        return postgres_ready(port)
    if part == "dashboard":
        return http_healthy(f"{LOOPBACK}:{port}")
    return grpc_serving(f"{LOOPBACK}:{port}")
