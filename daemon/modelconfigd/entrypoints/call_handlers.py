"""The handler of each RPC: check the caller, decode, call the servicer, map errors, count.

Handlers receive raw bytes and decode them here, so bytes that are not a valid request get
INVALID_ARGUMENT with details (grpcio's own decoding would answer INTERNAL). Responses may be
bytes already serialized by the hot path. The caller is checked before anything else, the
request's bytes are not even read for a caller who may not make the call. With metrics off
and no credentials to check, a handler does nothing beyond that.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent import futures
from time import perf_counter

import grpc
from google.protobuf.message import DecodeError
from google.rpc import code_pb2

from modelconfig.v1 import model_config_service_pb2 as api

from ..domain.access import Principal, Role
from ..domain.errors import (
    InvalidArgument,
    ModelConfigError,
    PermissionDenied,
    ResourceExhausted,
    StorageUnavailable,
    TooManyWatchers,
    Unauthenticated,
)
from .auth import ANYONE, REQUIRED_ROLES, Guard, actor_of
from .metrics import Metrics
from .status_mapping import abort, code_of
from .upload_requests import UploadRequests
from .wire_cache import WireCache

log = logging.getLogger(__name__)

# Reads whose answer is a pure function of the request bytes and the snapshot: answered from a
# per-snapshot cache of serialized responses (see wire_cache.py). Their implementations return
# (answer bytes, resolved view): the view is counted for metrics on every call, hit or miss.
# (ResolveForAccounts counts its views itself: see the servicer.)
CACHED_METHODS = frozenset({"ResolveForAccount"})


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


def _code(exc: Exception) -> int:
    if isinstance(exc, grpc.RpcError):  # the call ended under the handler (see abort)
        return code_pb2.CANCELLED
    return code_of(exc) if isinstance(exc, ModelConfigError) else code_pb2.INTERNAL


def _log_refused(
    method: str, context: grpc.ServicerContext, caller: Principal, exc: Exception
) -> None:
    """A write the use case refused: who tried what from where, and why."""
    if not isinstance(exc, ModelConfigError):
        return  # INTERNAL: abort logs it with its traceback
    peer = context.peer() or ""
    actor = caller.name or actor_of(peer)
    # A client's mistake is information; a database refusing writes is the operator's to fix.
    level = logging.WARNING if isinstance(exc, StorageUnavailable) else logging.INFO
    log.log(
        level,
        "refused %s for %s from %s: %s: %s",
        method,
        actor,
        peer,
        exc.reason,
        exc.message,
        extra={"rpc": method, "actor": actor, "peer": peer, "refusal": exc.reason},
    )


class StreamSlots:
    """Streams run on a pool of their own (they last: on the RPC threads they would starve
    every other call), at most `limit` at once; one more is refused, not queued.

    Server streams (WatchChanges, ExportConfiguration) share one set of slots, client streams
    (ImportOverrides, ApplyConfiguration) another, whose messages are each awaited at most
    `idle_seconds` (see upload_requests.py)."""

    # Threads beyond the limit, so that a stream over it runs at once, to be refused.
    SPARE = 8

    def __init__(
        self,
        limit: int,
        *,
        refused: type[ResourceExhausted] = TooManyWatchers,
        idle_seconds: float | None = None,
    ) -> None:
        self.limit = limit
        self.idle_seconds = idle_seconds
        self._refused = refused
        self.pool = futures.ThreadPoolExecutor(
            max_workers=limit + self.SPARE, thread_name_prefix="stream"
        )
        self._lock = threading.Lock()
        self._taken = 0

    def take(self) -> None:
        with self._lock:
            if self._taken >= self.limit:
                raise self._refused(
                    f"this daemon already serves {self.limit} such streams; try another replica "
                    "or later",
                    metadata={"limit": self.limit},
                )
            self._taken += 1

    def give_back(self) -> None:
        with self._lock:
            self._taken -= 1


def build_handler(
    servicer,
    method,
    service_name: str,
    cache: WireCache,
    guard: Guard | None,
    metrics: Metrics | None,
    streams: StreamSlots,
    uploads: StreamSlots,
) -> grpc.RpcMethodHandler:
    name = method.name
    implementation = getattr(servicer, name)
    full_name = f"/{service_name}/{name}"
    decode = _decoder(getattr(api, method.input_type.name), full_name)
    check = guard.checker(name) if guard is not None and guard.checks else None
    kind = "client_stream" if method.client_streaming else "unary"
    observed = metrics.method(service_name, name, kind) if metrics is not None else None
    writes = REQUIRED_ROLES[name] > Role.READER

    if name in CACHED_METHODS:
        if observed is not None:
            note_duration, note_view = observed.note_ok()

        # The hot path: plain try/except and no helper calls beyond the checks asked for.
        def handle_cached(request_bytes: bytes, context: grpc.ServicerContext):
            if observed is not None:
                started_at = perf_counter()
            try:
                caller = check(context) if check is not None else ANYONE
                entry, wire = cache.get(request_bytes)
                if entry is None:
                    entry = implementation(decode(request_bytes), context, caller)
                    # The implementation read the snapshot itself: `put` keeps the answer only
                    # if that snapshot is still the current one, the one `wire` belongs to.
                    cache.put(request_bytes, entry, wire)
            except Exception as exc:
                if observed is not None:
                    observed.start()  # counted as started when it ends, as note_ok's calls are
                    observed.done(started_at, _code(exc))
                abort(context, full_name, exc)
            if observed is not None:
                note_duration(perf_counter() - started_at)
                note_view(entry[1])
            return entry[0]

        return grpc.unary_unary_rpc_method_handler(handle_cached)  # answers are bytes already

    def run(call: Callable[[Principal], object], context: grpc.ServicerContext):
        if observed is not None:
            started_at = observed.start()
        caller = ANYONE
        try:
            if check is not None:
                caller = check(context)  # a refusal here is logged and counted there
            answer = call(caller)
        except Exception as exc:
            if observed is not None:
                observed.done(started_at, _code(exc))
            if isinstance(exc, PermissionDenied) and guard is not None and caller is not ANYONE:
                guard.refused(context, name, exc, caller)
            elif writes and not isinstance(exc, Unauthenticated | PermissionDenied):
                _log_refused(name, context, caller, exc)
            abort(context, full_name, exc)
        if observed is not None:
            observed.done(started_at, 0)
        return answer

    if method.server_streaming:

        def handle_server_stream(request_bytes: bytes, context: grpc.ServicerContext):
            if observed is not None:
                started_at = observed.start()
            caller = ANYONE
            taken = False
            try:
                if check is not None:
                    caller = check(context)
                streams.take()
                taken = True
                yield from implementation(decode(request_bytes), context, caller)
            except GeneratorExit:  # the caller went away (cancelled, or past its deadline)
                if observed is not None:
                    observed.done(started_at, code_pb2.CANCELLED)
                raise
            except Exception as exc:
                if observed is not None:
                    observed.done(started_at, _code(exc))
                abort(context, full_name, exc)  # a refused caller was logged by the check
            finally:
                if taken:
                    streams.give_back()
            if observed is not None:
                observed.done(started_at, 0)

        # grpcio runs a handler on this pool rather than the server's when it is set.
        handle_server_stream.experimental_thread_pool = streams.pool  # type: ignore[attr-defined]
        return grpc.unary_stream_rpc_method_handler(
            handle_server_stream, response_serializer=_serialize
        )

    if method.client_streaming:

        def upload(request_iterator, context: grpc.ServicerContext, caller: Principal):
            uploads.take()
            try:
                requests = UploadRequests(request_iterator, context, uploads.idle_seconds, name)
                try:
                    return implementation(map(decode, requests), context, caller)
                finally:
                    requests.close()
            finally:
                uploads.give_back()

        def handle_stream(request_iterator, context: grpc.ServicerContext):
            return run(lambda caller: upload(request_iterator, context, caller), context)

        # Off the RPC threads too: a client that stalls mid-upload must not starve other calls.
        handle_stream.experimental_thread_pool = uploads.pool  # type: ignore[attr-defined]
        return grpc.stream_unary_rpc_method_handler(handle_stream, response_serializer=_serialize)

    def handle(request_bytes: bytes, context: grpc.ServicerContext):
        return run(lambda caller: implementation(decode(request_bytes), context, caller), context)

    return grpc.unary_unary_rpc_method_handler(handle, response_serializer=_serialize)
