"""The JSON API over HTTP and the console, as an aiohttp application (http_server.py serves it).

Routes come from the proto's `google.api.http` annotations (http_routes.py), none is written by
hand. A request becomes the RPC's request message (protobuf's JSON mapping) and goes through the
very handler a gRPC call goes through (call_handlers.py: the caller's check, the servicer, the
error mapping, the metrics), with an HttpCallContext as its context: one set of rules. Answers
are the response message as JSON; server streams send one response per line (NDJSON); errors
are the google.rpc.Status as JSON with the HTTP status of its code.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import Callable, Mapping
from concurrent import futures
from pathlib import Path
from urllib.parse import urlsplit

import grpc
from aiohttp import web
from google.protobuf import json_format, message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from ..domain.errors import (
    InvalidArgument,
    ModelConfigError,
    ResourceExhausted,
    Unauthenticated,
)
from . import json_masks
from .auth import ANYONE, Guard
from .grpc_server import SERVICE
from .http_context import FORWARDED_HEADERS, CallAborted, HttpCallContext, peer_of
from .http_routes import Route, routes_of
from .request_origin import REQUEST_ID
from .status_mapping import HTTP_STATUS, plain_status, to_status

log = logging.getLogger(__name__)

CONSOLE = Path(__file__).resolve().parent.parent / "console"
JSON = "application/json"
NDJSON = "application/x-ndjson"
# Bodies up to this size: an ImportOverrides or ApplyConfiguration sent as one JSON message.
MAX_BODY = 64 * 1024 * 1024
# How often a stream waiting for its next response checks that its client is still there.
_STREAM_CHECK = 1.0


def to_json(reply: message.Message) -> bytes:
    """Protobuf's JSON mapping: lowerCamelCase names, int64 as strings, enums by name, and
    every field present, defaults too, so that a browser need not know the defaults.
    FieldMasks are printed by json_masks: json_format refuses a path like `..._per_1m_...`."""
    if not json_masks.holds_mask(reply.DESCRIPTOR):
        document = json_format.MessageToDict(reply, always_print_fields_with_no_presence=True)
    else:
        printable = type(reply)()
        printable.CopyFrom(reply)
        json_masks.clear_masks(printable)
        document = json_format.MessageToDict(printable, always_print_fields_with_no_presence=True)
        json_masks.put_masks(reply, document)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _internal(method: str) -> status_pb2.Status:
    return plain_status(
        code_pb2.INTERNAL, f"internal error in {method}; the daemon's log has the details",
        "INTERNAL",
    )


class HttpApi:
    """The aiohttp application: the annotated routes, GET /v1/caller and the console."""

    def __init__(
        self,
        handlers: Mapping[str, grpc.RpcMethodHandler],
        guard: Guard | None,
        stream_pool: futures.Executor,
        threads: int,
        console: Path = CONSOLE,
        listen_host: str = "127.0.0.1",
    ) -> None:
        self.routes = routes_of(SERVICE)
        self._listen_host = listen_host
        self._handlers = handlers
        self._guard = guard if guard is not None and guard.checks else None
        # Calls block (the database, the service's lock): they run on threads of their own,
        # as many as the gRPC port has; server streams run on the gRPC streams' pool.
        self._calls = futures.ThreadPoolExecutor(threads, thread_name_prefix="http")
        self._stream_pool = stream_pool
        self._console = console

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.on_response_prepare.append(_no_framing)
        app.router.add_get("/", self._to_console)
        app.router.add_get("/console", self._to_console)
        if self._console.is_dir():
            app.router.add_get("/console/", self._console_index)
            app.router.add_static("/console/", self._console)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    def close(self) -> None:
        self._calls.shutdown(wait=False, cancel_futures=True)

    # -- the console -----------------------------------------------------------------------

    async def _to_console(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/console/")

    async def _console_index(self, request: web.Request) -> web.StreamResponse:
        index = self._console / "index.html"
        if not index.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(index)

    # -- the API ---------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.rel_url.raw_path
        if self._guard is None and not _named_for_loopback(request, self._listen_host):
            status = plain_status(
                code_pb2.PERMISSION_DENIED,
                f"this daemon checks no tokens, so it answers only requests that name it by an "
                f"IP address, localhost or {self._listen_host}, not {request.host!r} (a page "
                "could point that name at this machine)",
                "HOST_NOT_ALLOWED",
                host=request.host[:200],
            )
            return self._error(request, status)
        if request.method not in _SAFE_METHODS and not _same_origin(request):
            status = plain_status(
                code_pb2.PERMISSION_DENIED,
                f"a page from {request.headers['Origin']} may not write here: only pages this "
                "daemon serves (and clients that are not browsers) may",
                "CROSS_ORIGIN",
                origin=request.headers["Origin"][:200],
            )
            return self._error(request, status)
        if raw_path == "/v1/caller":
            if request.method != "GET":
                return self._not_allowed(request, ["GET"])
            return self._caller(request)
        allowed = []
        for route in self.routes:
            variables = route.match(raw_path)
            if variables is None:
                continue
            if route.http_method != request.method:
                allowed.append(route.http_method)
                continue
            try:
                return await self._call(request, route, variables)
            except Exception:  # a fault here, not in the handler (which maps its own)
                log.exception("unexpected error in %s over HTTP", route.rpc.name)
                return self._error(request, _internal(route.rpc.full_name))
        if allowed:
            return self._not_allowed(request, allowed)
        status = plain_status(
            code_pb2.NOT_FOUND,
            f"no route {request.method} {request.path}: see the route table in the README",
            "ROUTE_NOT_FOUND",
            path=request.path[:200],
        )
        return self._error(request, status)

    def _not_allowed(self, request: web.Request, allowed: list[str]) -> web.Response:
        methods = ", ".join(sorted(set(allowed)))
        status = plain_status(
            code_pb2.UNIMPLEMENTED,
            f"{request.path} takes {methods}, not {request.method}",
            "METHOD_NOT_ALLOWED",
            method=request.method,
            allowed=methods,
        )
        response = self._error(request, status, http_status=405)
        response.headers["Allow"] = methods
        return response

    def _context(self, request: web.Request) -> HttpCallContext:
        headers = request.headers
        metadata = [(key, headers[key]) for key in FORWARDED_HEADERS if key in headers]
        transport = request.transport
        peername = transport.get_extra_info("peername") if transport is not None else None
        certificate = transport.get_extra_info("peercert") if transport is not None else None
        return HttpCallContext(metadata, peer_of(peername), _common_name(certificate))

    def _caller(self, request: web.Request) -> web.Response:
        """Who the bearer token is and what it may do (admin on a daemon that checks none)."""
        context = self._context(request)
        principal, authenticated = ANYONE, False
        if self._guard is not None:
            try:
                principal = self._guard.identify(context)
            except Unauthenticated as exc:
                return self._error(request, to_status(exc))
            authenticated = principal is not ANYONE
        body = {
            "name": principal.name or "anonymous",
            "role": principal.role.label,
            "authenticated": authenticated,
        }
        return web.json_response(body, headers=self._echo(request, context))

    async def _call(
        self, request: web.Request, route: Route, variables: dict[str, str]
    ) -> web.StreamResponse:
        context = self._context(request)
        handler = self._handlers[route.rpc.name]
        loop = asyncio.get_running_loop()
        query = list(request.query.items())

        def request_bytes(body: bytes) -> bytes:
            try:
                return route.request(variables, query, body).SerializeToString()
            except InvalidArgument:
                # As over gRPC, a caller who may not make the call learns nothing more.
                if self._guard is not None:
                    self._guard.checker(route.rpc.name)(context)
                raise

        try:
            if self._guard is not None:
                self._guard.identify(context)  # a stranger's body is not even read
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge as exc:
                raise ResourceExhausted(
                    f"the body is larger than {MAX_BODY} bytes",
                    reason="REQUEST_TOO_LARGE",
                    metadata={"limit": MAX_BODY},
                ) from exc
            # Parsing a large body takes a while: off the event loop, which serves every call.
            data = await loop.run_in_executor(self._calls, request_bytes, body)
        except ModelConfigError as exc:
            return self._error(request, to_status(exc), context)
        if handler.unary_stream is not None:
            return await self._stream(request, route, handler.unary_stream, data, context)

        def call() -> object:
            if handler.stream_unary is not None:  # a client stream of this one message
                return handler.stream_unary(iter([data]), context)
            return handler.unary_unary(data, context)

        try:
            answer = await loop.run_in_executor(self._calls, call)
        except CallAborted as aborted:
            return self._error(request, aborted.status, context)
        except Exception:
            log.exception("unexpected error in %s over HTTP", route.rpc.name)
            return self._error(request, _internal(route.rpc.full_name), context)
        finally:
            context.cancel()
        body = await loop.run_in_executor(self._calls, to_json, _reply(route, answer))
        return web.Response(body=body, content_type=JSON, headers=self._echo(request, context))

    async def _stream(
        self,
        request: web.Request,
        route: Route,
        handler: Callable,
        data: bytes,
        context: HttpCallContext,
    ) -> web.StreamResponse:
        """A server stream as NDJSON: one response per line, flushed as it comes. An error
        before the first response is an ordinary error answer; after it, a last line
        `{"error": <Status>}`."""
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[tuple[str, object]] = asyncio.Queue(maxsize=4)

        def put(item: tuple[str, object]) -> bool:
            """Hand `item` to the response, waiting while it is behind (backpressure)."""
            sent = asyncio.run_coroutine_threadsafe(lines.put(item), loop)
            while context.is_active():
                with contextlib.suppress(futures.TimeoutError):
                    sent.result(_STREAM_CHECK)
                    return True
            sent.cancel()
            return False

        def pump() -> None:
            stream = handler(data, context)
            try:
                for answer in stream:
                    if not put(("line", to_json(_reply(route, answer)) + b"\n")):
                        return
                put(("end", None))
            except CallAborted as aborted:
                put(("error", aborted.status))
            except Exception:
                log.exception("unexpected error in %s over HTTP", route.rpc.name)
                put(("error", _internal(route.rpc.full_name)))
            finally:
                stream.close()

        pumping = loop.run_in_executor(self._stream_pool, pump)
        response: web.StreamResponse | None = None
        try:
            kind, value = await lines.get()
            if kind == "error":
                return self._error(request, value, context)  # type: ignore[arg-type]
            response = web.StreamResponse(headers=self._echo(request, context))
            response.content_type = NDJSON
            await response.prepare(request)
            while kind == "line":
                await response.write(value)  # type: ignore[arg-type]
                kind, value = await self._next(request, lines)
            if kind == "error":
                error = json_format.MessageToDict(value)  # type: ignore[arg-type]
                await response.write(json.dumps({"error": error}).encode() + b"\n")
            if kind != "gone":
                await response.write_eof()
            return response
        except ConnectionError:  # the client went away while we wrote: nothing more to send
            return response if response is not None else web.Response()
        finally:
            context.cancel()  # the handler's callbacks stop a watch at once
            await asyncio.shield(pumping)

    @staticmethod
    async def _next(request: web.Request, lines: asyncio.Queue) -> tuple[str, object]:
        """The next line, or ("gone", None) once the client has closed the connection."""
        while True:
            try:
                return await asyncio.wait_for(lines.get(), _STREAM_CHECK)
            except TimeoutError:
                transport = request.transport
                if transport is None or transport.is_closing():
                    return "gone", None

    def _echo(self, request: web.Request, context: HttpCallContext | None) -> dict[str, str]:
        """X-Request-Id back: the one a write recorded (the caller's, or a new one), else the
        caller's."""
        request_id = (context.initial_metadata.get(REQUEST_ID) if context else None) or (
            request.headers.get(REQUEST_ID)
        )
        return {"X-Request-Id": request_id} if request_id else {}

    def _error(
        self,
        request: web.Request,
        status: status_pb2.Status,
        context: HttpCallContext | None = None,
        http_status: int | None = None,
    ) -> web.Response:
        body = json.dumps(json_format.MessageToDict(status), ensure_ascii=False).encode()
        headers = self._echo(request, context)
        if status.code == code_pb2.UNAUTHENTICATED:
            headers["WWW-Authenticate"] = 'Bearer realm="modelconfig"'
        return web.Response(
            status=http_status or _http_status(status),
            body=body,
            content_type=JSON,
            headers=headers,
        )


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Where HTTP has a closer status than the code's: 429 would tell a client to retry soon.
_HTTP_STATUS_BY_REASON = {"STORAGE_FULL": 507, "REQUEST_TOO_LARGE": 413}


def _http_status(status: status_pb2.Status) -> int:
    info = error_details_pb2.ErrorInfo()
    if status.details and status.details[0].Unpack(info):
        override = _HTTP_STATUS_BY_REASON.get(info.reason)
        if override is not None:
            return override
    return HTTP_STATUS.get(status.code, 500)


async def _no_framing(request: web.Request, response: web.StreamResponse) -> None:
    """No other site may frame the console (clickjacking) or sniff a type."""
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


def _same_origin(request: web.Request) -> bool:
    """Whether a browser sent this from a page of this very host and port, or no browser sent
    it. Browsers name the page's origin on every cross-origin POST, even one they send without
    asking first (a form, a `no-cors` fetch): refused, another site's page cannot use an open
    daemon on loopback, nor the token a console keeps, to change anything. Behind a reverse
    proxy that rewrites Host, its X-Forwarded-Host names the console's host (a page cannot set
    that header without a preflight, which this API does not grant)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    forwarded = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
    # `Origin: null` (a sandboxed frame, a data: page, a redirect) names no host: not ours.
    netloc = urlsplit(origin).netloc
    return bool(netloc) and netloc in {request.host, forwarded} - {""}


def _named_for_loopback(request: web.Request, listen_host: str) -> bool:
    """Whether the Host header names this machine the way an open daemon's callers do: an IP
    address, `localhost`, or the host it listens on. A page that rebinds its own DNS name to
    127.0.0.1 sends its own name: refused, it cannot read or change an open daemon."""
    hostname = (urlsplit(f"//{request.host}").hostname or "").rstrip(".").lower()
    if hostname in ("localhost", listen_host.strip("[]").lower()) or hostname.endswith(
        ".localhost"
    ):
        return True
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


def _reply(route: Route, answer: object) -> message.Message:
    """A handler's answer as the response message (the hot paths answer serialized bytes)."""
    if isinstance(answer, bytes):
        return route.response_class.FromString(answer)
    return answer  # type: ignore[return-value]


def _common_name(certificate: object) -> str | None:
    """The subject CN of a verified client certificate (ssl's getpeercert() form)."""
    if not isinstance(certificate, dict):
        return None
    for rdn in certificate.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None
