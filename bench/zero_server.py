"""A zero-work gRPC server: the ceiling a real ResolveForAccount handler is measured against.

It answers `/modelconfig.v1.ModelConfigService/ResolveForAccount` with a fixed body read from a
file (the daemon's real response for the benchmark request, so the bytes on the wire are the
same size), through a handler with identity serializers: no decoding, no work, no encoding.
It also serves the standard health service (SERVING once started) so the benchmark can wait
for it the same way it waits for the daemon.

    python bench/zero_server.py --mode threaded|aio --port PORT --body FILE [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVICE = "modelconfig.v1.ModelConfigService"
METHOD = "ResolveForAccount"


def _options(reuseport: bool) -> list[tuple[str, int]]:
    return [("grpc.so_reuseport", 1 if reuseport else 0)]


def serve_threaded(port: int, body: bytes, threads: int) -> None:
    def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
        return body

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads), options=_options(False))
    handler = grpc.unary_unary_rpc_method_handler(answer)  # no (de)serializers: bytes as is
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {METHOD: handler}),)
    )
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if server.add_insecure_port(f"127.0.0.1:{port}") != port:
        raise SystemExit(f"zero_server: cannot listen on 127.0.0.1:{port}")
    server.start()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"zero_server threaded({threads}) serving on 127.0.0.1:{port}", flush=True)
    stop.wait()
    server.stop(0).wait()


async def serve_aio(port: int, body: bytes) -> None:
    async def answer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return body

    server = grpc.aio.server(options=_options(False))
    handler = grpc.unary_unary_rpc_method_handler(answer)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {METHOD: handler}),)
    )
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if server.add_insecure_port(f"127.0.0.1:{port}") != port:
        raise SystemExit(f"zero_server: cannot listen on 127.0.0.1:{port}")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"zero_server aio serving on 127.0.0.1:{port}", flush=True)
    await stop.wait()
    await server.stop(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("threaded", "aio"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True, help="the response bytes to answer")
    parser.add_argument("--threads", type=int, default=8, help="threaded mode's pool size")
    args = parser.parse_args(argv)
    body = args.body.read_bytes()
    if args.mode == "threaded":
        serve_threaded(args.port, body, args.threads)
    else:
        asyncio.run(serve_aio(args.port, body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
