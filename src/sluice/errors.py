"""Errors with a public message, and their one mapping to gRPC status codes.

Services raise these; `grpc_server.ErrorInterceptor` turns them into gRPC statuses and the CLI turns
the statuses back into one clear line. Nothing else maps errors.
"""

from __future__ import annotations

import grpc


class SluiceError(Exception):
    """An error whose message is safe and useful to show to the user."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(SluiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(SluiceError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(SluiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(SluiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(SluiceError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(SluiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(SluiceError):
    code = grpc.StatusCode.UNAVAILABLE


_BY_CODE: dict[grpc.StatusCode, type[SluiceError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Unauthenticated,
        PermissionDenied,
        Unavailable,
    )
}


def from_rpc_error(error: grpc.RpcError) -> SluiceError:
    """The SluiceError a client sees for a failed call (the server's public message kept)."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else None
    if code == grpc.StatusCode.UNAVAILABLE:
        first_line = (details or "").splitlines()[0] if details else ""
        details = f"service unavailable (is the stack up? see 'sluice status'): {first_line}"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        details = "the service did not answer in time"
    cls = _BY_CODE.get(code, SluiceError)
    return cls(details or str(code))
