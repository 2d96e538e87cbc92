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

from ..domain.errors import TooManyUploads
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

# The largest message either way. 4 MiB is every gRPC client's default receive limit, so nothing
# the daemon sends is too large for a client left at its defaults, and what the daemon accepts it
# can send back (an exported configuration applies). The largest legitimate messages are far
# below it (measured in tests/e2e/test_limits.py): an ExportConfiguration part of 10,000
# overrides with 128-character account ids, an import chunk of 5,000 rows.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# HTTP/2 keepalive. The server pings a connection after a minute without frames and closes it if
# no answer comes within 20 s: the streams of a vanished client (a WatchChanges of a host that
# lost power sends nothing for hours) end and give their slots back. Clients may ping every 10 s
# (grpc's default refuses anything under 5 minutes with GOAWAY too_many_pings, which breaks
# watches behind NATs that drop quiet connections). No max_connection_age: it would cut every
# WatchChanges periodically for no gain on one port; idle connections (no calls at all) close
# after 10 minutes, and clients reconnect on their next call without noticing.
_CONNECTION_OPTIONS = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_connection_idle_ms", 600_000),
)


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    executor: futures.ThreadPoolExecutor
    streams: StreamSlots
    uploads: StreamSlots
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
        self.uploads.pool.shutdown(wait=False, cancel_futures=True)


def create_server(
    address: str,
    services: ModelConfigServices,
    feed: ChangeFeed,
    *,
    max_workers: int = 8,
    max_streams: int = 200,
    max_concurrent_rpcs: int | None = 1000,
    max_uploads: int = 8,
    upload_idle_seconds: float | None = 60.0,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    reuse_port: bool = False,
    guard: Guard | None = None,
    metrics: Metrics | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> RunningServer:
    """A started-not-yet server bound to `address` (port 0 picks one); see RunningServer.port.

    `guard` checks callers (none: everyone may do everything), `metrics` counts calls, and
    `credentials` serve TLS. Server streams (WatchChanges) run on threads of their own, at most
    `max_streams` at once, so that watchers never take the RPC threads. Client streams
    (ImportOverrides, ApplyConfiguration) likewise, at most `max_uploads` at once, each message
    awaited at most `upload_idle_seconds` (None: for ever). Messages larger than
    `max_message_bytes` are refused by gRPC itself, either way."""
    executor = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc")
    server = grpc.server(
        executor,
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        # A single process owns its port, so a clash fails loudly instead of starting a second
        # server silently; worker processes share theirs on purpose.
        options=[
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            *_CONNECTION_OPTIONS,
        ],
    )
    cache = WireCache(lambda: services.state)
    on_resolved = metrics.resolved if metrics is not None else None
    servicer = ModelConfigServicer(services, cache, feed, on_resolved)
    streams = StreamSlots(max_streams)
    uploads = StreamSlots(max_uploads, refused=TooManyUploads, idle_seconds=upload_idle_seconds)
    handlers = {
        m.name: build_handler(servicer, m, SERVICE_NAME, cache, guard, metrics, streams, uploads)
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
        uploads.pool.shutdown(wait=False)
        raise OSError(f"cannot listen on {address}: is another process using it?") from exc
    return RunningServer(server, port, health_servicer, executor, streams, uploads, handlers)
