"""Builds the gRPC server: the service, health and reflection, on one port.

Handlers receive raw bytes and decode them here, so bytes that are not a valid request get
INVALID_ARGUMENT with details (grpcio's own decoding would answer INTERNAL). Responses may be
bytes already serialized by the hot path.
"""

from __future__ import annotations

from concurrent import futures
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from modelconfig.v1 import model_config_service_pb2 as api

from ..domain.errors import InvalidArgument
from ..service_layer.services import ModelConfigServices
from .reflection_pool import MemberAwarePool
from .servicer import ModelConfigServicer
from .status_mapping import abort
from .wire_cache import WireCache

SERVICE = api.DESCRIPTOR.services_by_name["ModelConfigService"]
SERVICE_NAME = SERVICE.full_name


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    executor: futures.ThreadPoolExecutor

    def set_serving(self) -> None:
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def begin_draining(self) -> None:
        """Health turns NOT_SERVING so load balancers move away; calls still succeed."""
        self.health.enter_graceful_shutdown()

    def stop(self, grace: float | None) -> None:
        self.server.stop(grace).wait()
        self.executor.shutdown(wait=False, cancel_futures=True)


def _decoder(request_class, method: str):
    def decode(request_bytes: bytes):
        try:
            return request_class.FromString(request_bytes)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise InvalidArgument.field(
                "request",
                f"the request bytes do not decode as {request_class.DESCRIPTOR.full_name}",
                reason="MALFORMED_REQUEST",
                method=method,
            ) from exc

    return decode


def _serialize(response) -> bytes:
    """Responses are messages, or bytes already serialized by the hot path."""
    return response if isinstance(response, bytes) else response.SerializeToString()


# Reads whose answer is a pure function of the request bytes and the snapshot: answered from a
# per-snapshot cache of serialized responses (see wire_cache.py).
CACHED_METHODS = frozenset({"ResolveForAccount"})


def _cached_handler(
    implementation, decode, full_name: str, cache: WireCache
) -> grpc.RpcMethodHandler:
    def handle(request_bytes: bytes, context: grpc.ServicerContext):
        answer, wire = cache.get(request_bytes)
        if answer is not None:
            return answer
        try:
            answer = implementation(decode(request_bytes), context)
        except Exception as exc:
            abort(context, full_name, exc)
        # The implementation read the snapshot itself: `put` keeps the answer only if that
        # snapshot is still the current one, the one `wire` belongs to.
        cache.put(request_bytes, answer, wire)
        return answer

    return grpc.unary_unary_rpc_method_handler(handle)  # answers are bytes already


def _handler(servicer: ModelConfigServicer, method, cache: WireCache) -> grpc.RpcMethodHandler:
    implementation = getattr(servicer, method.name)
    full_name = f"/{SERVICE_NAME}/{method.name}"
    decode = _decoder(getattr(api, method.input_type.name), full_name)
    if method.name in CACHED_METHODS:
        return _cached_handler(implementation, decode, full_name, cache)

    # Plain try/except rather than a context manager: this wraps the hot path.
    if method.client_streaming:

        def handle_stream(request_iterator, context: grpc.ServicerContext):
            try:
                return implementation(map(decode, request_iterator), context)
            except Exception as exc:
                abort(context, full_name, exc)

        return grpc.stream_unary_rpc_method_handler(handle_stream, response_serializer=_serialize)

    def handle(request_bytes: bytes, context: grpc.ServicerContext):
        try:
            return implementation(decode(request_bytes), context)
        except Exception as exc:
            abort(context, full_name, exc)

    return grpc.unary_unary_rpc_method_handler(handle, response_serializer=_serialize)


def create_server(
    address: str,
    services: ModelConfigServices,
    *,
    max_workers: int = 8,
    max_concurrent_rpcs: int | None = 1000,
    reuse_port: bool = False,
) -> RunningServer:
    """A started-not-yet server bound to `address` (port 0 picks one); see RunningServer.port."""
    executor = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc")
    server = grpc.server(
        executor,
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        # A single process owns its port, so a clash fails loudly instead of starting a second
        # server silently; worker processes share theirs on purpose.
        options=[("grpc.so_reuseport", 1 if reuse_port else 0)],
    )
    cache = WireCache(lambda: services.state)
    servicer = ModelConfigServicer(services, cache)
    handlers = {m.name: _handler(servicer, m, cache) for m in SERVICE.methods}
    # Registered (not generic) handlers: the core matches the method path itself, sparing a
    # Python-level look-up on every call.
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
    health_servicer = health.HealthServicer()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server, MemberAwarePool()
    )
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio reports a failed bind this way
        executor.shutdown(wait=False)
        raise OSError(f"cannot listen on {address}: is another process using it?") from exc
    return RunningServer(server, port, health_servicer, executor)
