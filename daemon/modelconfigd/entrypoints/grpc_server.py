"""Builds the gRPC server: the service, health and reflection, on one port (TLS or not).

Health and reflection are open to every caller: probes need the one and grpcurl the other, and
descriptors are no secret. Every call of the service goes through call_handlers.py.
"""

from __future__ import annotations

from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from modelconfig.v1 import model_config_service_pb2 as api

from ..service_layer.change_feed import ChangeFeed
from ..service_layer.services import ModelConfigServices
from . import reflection_v1
from .auth import Guard
from .call_handlers import StreamSlots, build_handler
from .metrics import Metrics
from .reflection_pool import MemberAwarePool
from .servicer import ModelConfigServicer
from .wire_cache import WireCache

SERVICE = api.DESCRIPTOR.services_by_name["ModelConfigService"]
SERVICE_NAME = SERVICE.full_name


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    executor: futures.ThreadPoolExecutor
    streams: StreamSlots
    # The service's method handlers by RPC name: the JSON API over HTTP calls them too.
    handlers: dict[str, grpc.RpcMethodHandler]

    def set_serving(self) -> None:
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def begin_draining(self) -> None:
        """Health turns NOT_SERVING so load balancers move away; calls still succeed."""
        self.health.enter_graceful_shutdown()

    def stop(self, grace: float | None) -> None:
        self.server.stop(grace).wait()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.streams.pool.shutdown(wait=False, cancel_futures=True)


def create_server(
    address: str,
    services: ModelConfigServices,
    feed: ChangeFeed,
    *,
    max_workers: int = 8,
    max_streams: int = 200,
    max_concurrent_rpcs: int | None = 1000,
    reuse_port: bool = False,
    guard: Guard | None = None,
    metrics: Metrics | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> RunningServer:
    """A started-not-yet server bound to `address` (port 0 picks one); see RunningServer.port.

    `guard` checks callers (none: everyone may do everything), `metrics` counts calls, and
    `credentials` serve TLS. Server streams (WatchChanges) run on threads of their own, at most
    `max_streams` at once, so that watchers never take the RPC threads."""
    executor = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc")
    server = grpc.server(
        executor,
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        # A single process owns its port, so a clash fails loudly instead of starting a second
        # server silently; worker processes share theirs on purpose.
        options=[("grpc.so_reuseport", 1 if reuse_port else 0)],
    )
    cache = WireCache(lambda: services.state)
    on_resolved = metrics.resolved if metrics is not None else None
    servicer = ModelConfigServicer(services, cache, feed, on_resolved)
    streams = StreamSlots(max_streams)
    handlers = {
        m.name: build_handler(servicer, m, SERVICE_NAME, cache, guard, metrics, streams)
        for m in SERVICE.methods
    }
    # Registered (not generic) handlers: the core matches the method path itself, sparing a
    # Python-level look-up on every call.
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
    health_servicer = health.HealthServicer()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection_v1.enable(server, (SERVICE_NAME, health.SERVICE_NAME), MemberAwarePool())
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:  # grpcio reports a failed bind this way
        executor.shutdown(wait=False)
        streams.pool.shutdown(wait=False)
        raise OSError(f"cannot listen on {address}: is another process using it?") from exc
    return RunningServer(server, port, health_servicer, executor, streams, handlers)
