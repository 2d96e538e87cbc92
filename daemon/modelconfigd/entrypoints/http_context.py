"""A grpc.ServicerContext for a call that came over HTTP: what the handlers read of one.

The handlers (call_handlers.py) and the servicer read a call's metadata (the bearer token,
x-request-id, x-change-reason), its peer, its client certificate, whether it is still active,
and end it with `abort_with_status`; this gives them the same from an HTTP request, so a call
over HTTP goes through the very code a gRPC call does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import grpc
from google.rpc import status_pb2

from .request_origin import CHANGE_REASON, REQUEST_ID
from .status_mapping import status_of_abort

# The request headers passed on as metadata, as gRPC clients send them.
FORWARDED_HEADERS = ("authorization", REQUEST_ID, CHANGE_REASON)


class CallAborted(Exception):
    """Raised by `abort_with_status`, as grpcio's own context raises: the call ends here."""

    def __init__(self, status: status_pb2.Status) -> None:
        super().__init__(status.message)
        self.status = status


class HttpCallContext:
    """One HTTP request seen as a gRPC call (only the methods the handlers use)."""

    def __init__(
        self,
        metadata: Sequence[tuple[str, str]],
        peer: str,
        common_name: str | None = None,
    ) -> None:
        self._metadata = tuple(metadata)
        self._peer = peer
        self._common_name = common_name
        self._active = True
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self.initial_metadata: dict[str, str] = {}

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def auth_context(self) -> dict[str, list[bytes]]:
        if self._common_name is None:
            return {}
        return {"x509_common_name": [self._common_name.encode()]}

    def send_initial_metadata(self, metadata: Sequence[tuple[str, str]]) -> None:
        self.initial_metadata.update(metadata)

    def abort_with_status(self, status: grpc.Status) -> None:
        raise CallAborted(status_of_abort(status))

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        """A status without details (status_mapping ends a call its caller left this way)."""
        raise CallAborted(status_pb2.Status(code=code.value[0], message=details))

    def is_active(self) -> bool:
        return self._active

    def add_callback(self, callback: Callable[[], None]) -> bool:
        with self._lock:
            if self._active:
                self._callbacks.append(callback)
                return True
        return False

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> None:
        """The HTTP client went away (or the response ended): as grpcio does when a call
        ends, run the callbacks, which stop a watch at once."""
        with self._lock:
            self._active, callbacks, self._callbacks = False, self._callbacks, []
        for callback in callbacks:
            callback()


def peer_of(peername: object) -> str:
    """A socket's peer name as grpcio writes it: `ipv4:127.0.0.1:54321`, `ipv6:[::1]:54321`."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"ipv6:[{host}]:{port}" if ":" in str(host) else f"ipv4:{host}:{port}"
    return "local"
