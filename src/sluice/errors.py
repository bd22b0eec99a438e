"""Errors with a public message, and their one mapping to gRPC status codes.

Services raise these; `grpc_server.ErrorInterceptor` turns them into gRPC statuses and the CLI turns
the statuses back into one clear line. Nothing else maps errors.

Each class names its status (`status`, a `grpc.StatusCode` member's name) rather than holding the
member, so importing this module does not import grpc: the CLI's `--help` and parser need these
classes, not the gRPC runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc


class SluiceError(Exception):
    """An error whose message is safe and useful to show to the user."""

    status = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> grpc.StatusCode:
        """The gRPC status this error is sent as."""
        import grpc

        return grpc.StatusCode[self.status]


class InvalidArgument(SluiceError):
    status = "INVALID_ARGUMENT"


class NotFound(SluiceError):
    status = "NOT_FOUND"


class AlreadyExists(SluiceError):
    status = "ALREADY_EXISTS"


class FailedPrecondition(SluiceError):
    status = "FAILED_PRECONDITION"


class Unauthenticated(SluiceError):
    status = "UNAUTHENTICATED"


class PermissionDenied(SluiceError):
    status = "PERMISSION_DENIED"


class Unavailable(SluiceError):
    status = "UNAVAILABLE"


_BY_STATUS: dict[str, type[SluiceError]] = {
    cls.status: cls
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
    import grpc

    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else None
    if code == grpc.StatusCode.UNAVAILABLE:
        first_line = (details or "").splitlines()[0] if details else ""
        details = f"service unavailable (is the stack up? see 'sluice status'): {first_line}"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        details = "the service did not answer in time"
    cls = _BY_STATUS.get(code.name, SluiceError)
    return cls(details or str(code))
