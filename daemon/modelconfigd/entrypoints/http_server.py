"""Serves the JSON API (http_api.py) on its port: aiohttp's asyncio loop in a thread of its own,
beside grpcio's threads in the same process; started and stopped with the gRPC server (main.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading

from aiohttp import web

from .http_api import HttpApi


class HttpServer:
    """The HttpApi served on an address (or on a listening socket a supervisor shares with
    its workers), by an asyncio loop in a thread of its own beside grpcio's threads."""

    def __init__(
        self,
        api: HttpApi,
        address: str = "",
        *,
        sock: socket.socket | None = None,
        ssl_context: ssl.SSLContext | None = None,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self.api = api
        self._address = address
        self._sock = sock
        self._ssl = ssl_context
        self._shutdown_timeout = shutdown_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="http", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def start(self) -> int:
        """Listen and serve; the port (the one chosen for port 0). OSError if it cannot bind."""
        self._thread.start()
        try:
            self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        except OSError as exc:
            self._halt()
            raise OSError(f"cannot listen on {self._address} for HTTP: {exc.strerror}") from exc
        return self.port

    async def _start(self) -> int:
        self._runner = web.AppRunner(
            self.api.application(), access_log=None, shutdown_timeout=self._shutdown_timeout
        )
        await self._runner.setup()
        site: web.BaseSite
        if self._sock is not None:
            site = web.SockSite(self._runner, self._sock, ssl_context=self._ssl)
        else:
            host, _, port = self._address.rpartition(":")
            site = web.TCPSite(self._runner, host.strip("[]"), int(port), ssl_context=self._ssl)
        await site.start()
        return self._runner.addresses[0][1]

    def stop(self) -> None:
        """Stop listening, let calls in flight finish (up to the shutdown timeout), stop."""
        if self._runner is not None:
            cleanup = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            with contextlib.suppress(Exception):
                cleanup.result(self._shutdown_timeout + 5)
        self._halt()

    def _halt(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()
        self.api.close()


def listening_socket(address: str) -> socket.socket:
    """A listening TCP socket on `address` (host:port; port 0 picks one), for a supervisor to
    hand to its workers: each then accepts on it, and the kernel spreads the connections."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
