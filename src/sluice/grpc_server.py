"""Building a service's gRPC server: health, reflection, API-key scoping and error mapping.

Reflection answers both grpc.reflection.v1 (what current grpcurl, Postman and grpcui ask first) and
grpc.reflection.v1alpha. grpcio-reflection ships only v1alpha; v1 is the same file under another
package, so its messages are the same on the wire: one servicer serves both, and v1's descriptor,
built from v1alpha's, is added to the default pool so that v1 can be described like any service.

Every handler runs inside the guard: the caller is resolved from its metadata (`KeyRing.caller_for`)
and put in a context variable (`current_caller()`, `current_workspace()`); a method its servicer
lists in `internal_only` refuses API keys and one in `admin_only` refuses keys that are not admin
keys (PERMISSION_DENIED); a SluiceError becomes its gRPC status with the public message; any other
exception is logged and becomes INTERNAL without leaking details.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, text_format
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from sluice.auth import Caller, KeyRing
from sluice.errors import PermissionDenied, SluiceError

log = logging.getLogger(__name__)

_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("sluice_caller")
_OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
_REFLECTION_V1_FILE = "grpc/reflection/v1/reflection.proto"


def current_caller() -> Caller:
    """Who made the request being handled."""
    return _caller.get()


def current_workspace() -> str:
    """The workspace of the request being handled."""
    return _caller.get().workspace


@dataclass
class _Access:
    """Full method names ('/pkg.Service/Method') that only services, or only admin keys, may call."""

    internal_only: set[str] = field(default_factory=set)
    admin_only: set[str] = field(default_factory=set)

    def add(self, servicer: Any, service_name: str) -> None:
        for attribute in ("internal_only", "admin_only"):
            names = set(getattr(servicer, attribute, ()))
            if not names:
                continue
            methods = descriptor_pool.Default().FindServiceByName(service_name).methods_by_name
            unknown = names - set(methods)
            if unknown:
                raise ValueError(f"{service_name} has no method {', '.join(sorted(unknown))} ({attribute})")
            getattr(self, attribute).update(f"/{service_name}/{name}" for name in names)

    def check(self, method: str, caller: Caller) -> None:
        name = method.rsplit("/", 1)[-1]
        if method in self.internal_only and not caller.internal:
            raise PermissionDenied(f"{name} is for Sluice services only")
        if method in self.admin_only and not caller.may_administer:
            raise PermissionDenied(f"{name} needs an admin API key")


async def _abort(context: grpc.aio.ServicerContext, error: Exception, method: str) -> None:
    if isinstance(error, SluiceError):
        await context.abort(error.code, error.message)
    log.exception("unexpected error in %s", method)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method} (see the service log)")


class _GuardInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: KeyRing, access: _Access) -> None:
        self._keys = keys
        self._access = access

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(_OPEN_SERVICES):
            return handler
        keys, access = self._keys, self._access

        async def scope(context: grpc.aio.ServicerContext) -> None:
            metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
            caller = await keys.caller_for(metadata)
            access.check(method, caller)
            _caller.set(caller)

        if handler.unary_unary or handler.stream_unary:
            inner = handler.unary_unary or handler.stream_unary

            async def unary_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    await scope(context)
                    return await inner(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as error:
                    await _abort(context, error, method)

            factory = (
                grpc.unary_unary_rpc_method_handler
                if handler.unary_unary
                else grpc.stream_unary_rpc_method_handler
            )
            return factory(
                unary_response,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        inner_stream = handler.unary_stream or handler.stream_stream

        async def stream_response(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                await scope(context)
                async for item in inner_stream(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                await _abort(context, error, method)

        factory = (
            grpc.unary_stream_rpc_method_handler
            if handler.unary_stream
            else grpc.stream_stream_rpc_method_handler
        )
        return factory(
            stream_response,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _add_reflection_v1_descriptor() -> None:
    """grpc/reflection/v1/reflection.proto in the default pool: v1alpha's file, renamed."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_REFLECTION_V1_FILE)
        return
    except KeyError:
        pass
    alpha = descriptor_pb2.FileDescriptorProto.FromString(reflection_pb2.DESCRIPTOR.serialized_pb)
    alpha.ClearField("options")
    text = text_format.MessageToString(alpha).replace("v1alpha", "v1")
    pool.AddSerializedFile(text_format.Parse(text, descriptor_pb2.FileDescriptorProto()).SerializeToString())


def _enable_reflection(names: list[str], server: grpc.aio.Server) -> None:
    """Serve reflection v1alpha and v1 (same messages on the wire) for `names`."""
    _add_reflection_v1_descriptor()
    servicer = reflection.aio.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    info = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": info}),)
    )


Registrar = Callable[[Any, grpc.aio.Server], None]


async def start_server(
    services: Iterable[tuple[Registrar, Any, str]],
    address: str,
    keys: KeyRing,
) -> tuple[grpc.aio.Server, health.aio.HealthServicer, int]:
    """Start a server at `address` (port 0 picks one); returns it, its health servicer and port.

    `services` holds (add_XServicer_to_server, servicer, full service name) triples; a servicer's
    `internal_only` and `admin_only` (method names) restrict who may call those methods. The key
    ring is started first (it reads the keys file and creates its workspaces' rows).
    """
    await keys.start()
    access = _Access()
    server = grpc.aio.server(
        interceptors=[_GuardInterceptor(keys, access)],
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    own: list[str] = []
    for register, servicer, name in services:
        access.add(servicer, name)
        register(servicer, server)
        own.append(name)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    _enable_reflection([health_name, reflection.SERVICE_NAME, REFLECTION_V1, *own], server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot listen on {address}")
    await server.start()
    for name in ["", *own]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, health_servicer, port


async def stop_server(server: grpc.aio.Server, health_servicer: Any, grace_s: float = 5.0) -> None:
    """Report NOT_SERVING, let in-flight calls finish, then stop."""
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace_s)
