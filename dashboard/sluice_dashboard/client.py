"""The dashboard's gRPC client: one call path for every service, with a deadline, the caller's
API key, and errors turned into ServiceError (never a traceback on the page).

Channels are shared by every browser session of the process (gRPC channels are thread-safe);
a call never waits for a service that is down (no wait-for-ready) and never longer than its
deadline, so a page shows a clear message instead of blocking.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from sluice.clients import channel, user_metadata
from sluice.v1 import admin_pb2_grpc, models_pb2_grpc, scheduler_pb2_grpc, staging_pb2_grpc

DEFAULT_TIMEOUT_S = 3.0
STAGING, SCHEDULER, MODELS, ADMIN = "staging", "scheduler", "models", "admin"
# Which server hosts each gRPC service.
_HOSTS = {STAGING: STAGING, MODELS: STAGING, SCHEDULER: SCHEDULER, ADMIN: SCHEDULER}
_STUBS = {
    STAGING: staging_pb2_grpc.StagingServiceStub,
    MODELS: models_pb2_grpc.ModelServiceStub,
    SCHEDULER: scheduler_pb2_grpc.SchedulerServiceStub,
    ADMIN: admin_pb2_grpc.AdminServiceStub,
}
_DOWN = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class ServiceError(Exception):
    """A call that failed: `down` when the service did not answer, else what it refused and why."""

    def __init__(self, service: str, address: str, code: grpc.StatusCode, details: str) -> None:
        self.service, self.address, self.code, self.details = service, address, code, details
        super().__init__(str(self))

    @property
    def down(self) -> bool:
        return self.code in _DOWN

    def __str__(self) -> str:
        if self.down:
            host = _HOSTS.get(self.service, self.service)
            return (
                f"The {host} service at {self.address} is not answering ({self.details or self.code.name}). "
                "This page tries again by itself."
            )
        return self.details or self.code.name


@dataclass(frozen=True)
class Addresses:
    staging: str
    scheduler: str


def addresses_from_env() -> Addresses:
    """SLUICE_STAGING_ADDRESS and SLUICE_SCHEDULER_ADDRESS (what `sluice up` sets), else the
    local stack's credentials file in $SLUICE_HOME (or ./.sluice), else the default ports."""
    local: dict[str, str] = {}
    home = Path(os.environ.get("SLUICE_HOME") or ".sluice") / "credentials.json"
    if home.is_file():
        try:
            local = {str(k): str(v) for k, v in json.loads(home.read_text()).items()}
        except (OSError, ValueError):
            local = {}
    return Addresses(
        staging=os.environ.get("SLUICE_STAGING_ADDRESS") or local.get("staging_address", "127.0.0.1:50051"),
        scheduler=os.environ.get("SLUICE_SCHEDULER_ADDRESS")
        or local.get("scheduler_address", "127.0.0.1:50052"),
    )


_channels: dict[str, grpc.Channel] = {}
_lock = threading.Lock()


def _channel(address: str) -> grpc.Channel:
    with _lock:
        if address not in _channels:
            _channels[address] = channel(address)
        return _channels[address]


def _error(service: str, address: str, error: grpc.RpcError) -> ServiceError:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return ServiceError(service, address, code, details or "")


class Services:
    """Every service the dashboard calls, as one API key's caller.

    `call(service, method, request)` for a unary call, `stream(...)` for a call that answers with
    a stream, `upload(...)` for one that takes a stream. `service` is one of STAGING, SCHEDULER,
    MODELS, ADMIN; `method` the gRPC method's name (e.g. "ListJobs").
    """

    def __init__(self, addresses: Addresses, api_key: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.addresses = addresses
        self._metadata = user_metadata(api_key)
        self.timeout_s = timeout_s

    def __repr__(self) -> str:  # never the key
        return f"Services({self.addresses!r})"

    def address(self, service: str) -> str:
        return self.addresses.staging if _HOSTS[service] == STAGING else self.addresses.scheduler

    def _method(self, service: str, method: str) -> Any:
        stub = _STUBS[service](_channel(self.address(service)))
        return getattr(stub, method)

    def call(self, service: str, method: str, request: Any, timeout_s: float | None = None) -> Any:
        try:
            return self._method(service, method)(
                request, metadata=self._metadata, timeout=timeout_s or self.timeout_s
            )
        except grpc.RpcError as error:
            raise _error(service, self.address(service), error) from None

    def stream(
        self, service: str, method: str, request: Any, timeout_s: float | None = None
    ) -> Iterator[Any]:
        """The answers of a server-streaming call, within one deadline for the whole stream."""
        try:
            yield from self._method(service, method)(
                request, metadata=self._metadata, timeout=timeout_s or self.timeout_s
            )
        except grpc.RpcError as error:
            raise _error(service, self.address(service), error) from None

    def upload(
        self, service: str, method: str, requests: Iterable[Any], timeout_s: float | None = None
    ) -> Any:
        """A client-streaming call (UploadFiles)."""
        try:
            return self._method(service, method)(
                iter(requests), metadata=self._metadata, timeout=timeout_s or self.timeout_s
            )
        except grpc.RpcError as error:
            raise _error(service, self.address(service), error) from None
