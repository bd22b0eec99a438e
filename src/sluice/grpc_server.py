"""Building a service's gRPC server: health, reflection, API-key scoping and error mapping.

Reflection answers both grpc.reflection.v1 (what current grpcurl, Postman and grpcui ask first) and
grpc.reflection.v1alpha. grpcio-reflection ships only v1alpha; v1 is the same file under another
package, so its messages are the same on the wire: one servicer serves both, and v1's descriptor,
built from v1alpha's, is added to the default pool so that v1 can be described like any service.

Every handler runs inside `_guard`: the caller's workspace is resolved from its metadata and put in a
context variable (`current_workspace()`), and a SluiceError becomes its gRPC status with the public
message; any other exception is logged and becomes INTERNAL without leaking details.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, text_format
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from sluice.auth import KeyRing
from sluice.errors import SluiceError

log = logging.getLogger(__name__)

_workspace: contextvars.ContextVar[str] = contextvars.ContextVar("sluice_workspace")
_OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
_REFLECTION_V1_FILE = "grpc/reflection/v1/reflection.proto"


def current_workspace() -> str:
    """The workspace of the request being handled."""
    return _workspace.get()


async def _abort(context: grpc.aio.ServicerContext, error: Exception, method: str) -> None:
    if isinstance(error, SluiceError):
        await context.abort(error.code, error.message)
    log.exception("unexpected error in %s", method)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method} (see the service log)")


class _GuardInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(_OPEN_SERVICES):
            return handler
        keys = self._keys

        def scope(context: grpc.aio.ServicerContext) -> None:
            metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
            _workspace.set(keys.workspace_for(metadata))

        if handler.unary_unary or handler.stream_unary:
            inner = handler.unary_unary or handler.stream_unary

            async def unary_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    scope(context)
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
                scope(context)
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

    `services` holds (add_XServicer_to_server, servicer, full service name) triples.
    """
    server = grpc.aio.server(
        interceptors=[_GuardInterceptor(keys)],
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    own: list[str] = []
    for register, servicer, name in services:
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
