"""modelconfigd: migrate, load the snapshot, serve; on SIGTERM drain in-flight calls and exit 0.

With --workers N, a supervisor migrates once, then forks N processes that share the port with
SO_REUSEPORT (forked before any gRPC object exists, as grpcio requires); each keeps its own
snapshot and catches up with the others' writes by polling. The supervisor forwards SIGTERM and
SIGHUP and restarts a worker that dies. SIGHUP re-reads the tokens file and the TLS files.

Without TLS and authentication the daemon serves loopback only, unless told --insecure.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING

import peewee

from .. import config
from ..adapters.database import describe, open_database
from ..adapters.migrations import migrate
from ..adapters.store import storage_condition
from ..domain.errors import StorageUnavailable
from . import log_format, metrics
from .app import App
from .auth import Guard
from .grpc_server import RunningServer, create_server
from .tls import ServerTls, TlsFileError, read_tls_files
from .tokens import TokensFileError, load_tokens

if TYPE_CHECKING:  # aiohttp is imported only when the HTTP port is on (a quarter second)
    from .http_server import HttpServer

log = logging.getLogger("modelconfigd")
_OPEN_ERRORS = (ValueError, RuntimeError, OSError, StorageUnavailable, peewee.DatabaseError)
_SECURITY_ERRORS = (TokensFileError, TlsFileError)


# SIGTERM and SIGINT are blocked in every thread and process (see main) and taken synchronously
# by the main thread: a signal sent at any moment stays pending until it is taken, is never
# delivered to a thread that cannot act on it, and never runs a handler in the middle of other
# code (a handler's Event.set() could wait forever for the Event's lock its thread was holding).
_STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
_SERVE_SIGNALS = _STOP_SIGNALS | {signal.SIGHUP}
_SUPERVISOR_SIGNALS = _SERVE_SIGNALS | {signal.SIGCHLD}
_START_TIMEOUT = 120.0  # seconds the workers may take to serve
_RESTART_DELAY = 1.0  # no tight restart loop when a worker cannot start at all


def main(argv: list[str] | None = None) -> int:
    settings = config.parse(argv)
    log_format.configure(settings.log_level, settings.log_format, sys.stderr)
    for signum in _SUPERVISOR_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)  # an inherited SIG_IGN would discard them
    # Before any thread or worker exists: both inherit the mask.
    signal.pthread_sigmask(signal.SIG_BLOCK, _SUPERVISOR_SIGNALS)
    # Before opening it, so that a failure to open names it too.
    log.info("database: %s", describe(settings.database_url))
    missing = _unprotected(settings)
    if missing and not settings.insecure:
        log.error(
            "refusing to serve %s without %s: anyone who can reach it could read and change "
            "every tenant's models. Configure them, listen on loopback (127.0.0.1), or pass "
            "--insecure (MODELCONFIG_INSECURE=1) to serve it open anyway",
            " and ".join(a for a in (settings.listen, settings.http_listen) if a),
            missing,
        )
        return 1
    if missing:
        log.warning(
            "INSECURE (--insecure): serving %s without %s: anyone who can reach it can read "
            "and change every tenant's models",
            " and ".join(a for a in (settings.listen, settings.http_listen) if a),
            missing,
        )
    if settings.workers == 1:
        return _serve(settings)
    return _supervise(settings)


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere


def _unprotected(settings: config.Settings) -> str | None:
    """What a non-loopback address (gRPC's or HTTP's) lacks to be safe to serve (TLS,
    authentication), if any."""
    hosts = [a.rpartition(":")[0] for a in (settings.listen, settings.http_listen) if a]
    authenticated = bool(settings.tokens_file or settings.tls_client_ca)
    if all(_is_loopback(host) for host in hosts) or (settings.tls and authenticated):
        return None
    return " and ".join(
        what
        for what, absent in (
            ("TLS (MODELCONFIG_TLS_CERT, MODELCONFIG_TLS_KEY)", not settings.tls),
            (
                "authentication (MODELCONFIG_TOKENS_FILE, or MODELCONFIG_TLS_CLIENT_CA for "
                "client certificates)",
                not authenticated,
            ),
        )
        if absent
    )


def _security(settings: config.Settings, on_refused=None) -> tuple[Guard | None, ServerTls | None]:
    """The caller checks and the TLS of one serving process (none: an open daemon)."""
    tls = None
    if settings.tls:
        tls = ServerTls(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
    tokens = load_tokens(settings.tokens_file) if settings.tokens_file else None
    if tokens is None and not settings.tls_client_ca:
        return None, tls
    return Guard(tokens, bool(settings.tls_client_ca), on_refused), tls


def _reload(settings: config.Settings, guard: Guard | None, tls: ServerTls | None) -> None:
    """SIGHUP: re-read the tokens file and the TLS files; what cannot be used is kept as was."""
    if guard is not None and settings.tokens_file:
        try:
            tokens = load_tokens(settings.tokens_file)
        except TokensFileError as exc:
            log.error("tokens file not reloaded, the previous tokens stay in force: %s", exc)
        else:
            guard.replace_tokens(tokens)
            log.info("reloaded %d tokens from %s", tokens.count, settings.tokens_file)
    if tls is not None:
        try:
            tls.reload()
        except TlsFileError as exc:
            log.error("TLS files not reloaded, the previous ones stay in force: %s", exc)
        else:
            log.info("reloaded the TLS files; new connections use them")


def _serve(
    settings: config.Settings,
    ready_fd: int | None = None,
    http_socket: socket.socket | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT, then drain. Announces readiness on stdout or on `ready_fd`.
    A worker serves HTTP on its supervisor's `http_socket`."""
    counted = metrics.Metrics() if settings.metrics_listen else None
    try:
        guard, tls = _security(settings, counted.refused if counted else None)
        if counted is not None and ready_fd is None:  # workers': the supervisor serves them
            metrics.serve(settings.metrics_listen, counted)
    except (*_SECURITY_ERRORS, OSError) as exc:
        log.error("%s", exc)
        return 1
    try:
        # A worker (ready_fd given) starts after its supervisor has migrated the database.
        app = App.open(
            settings.database_url,
            poll_interval=settings.effective_poll_interval,
            migrated=ready_fd is not None,
            on_publish=counted.published if counted else None,
            keep=config.keep_policy(settings.changes_keep),
            audit_keep=config.keep_policy(settings.audit_keep) if settings.audit_keep else None,
        )
        if counted is not None:
            app.live.add_storage_listener(counted.storage)
    except _OPEN_ERRORS as exc:
        log.error(
            "cannot open the database (%s): %s",
            describe(settings.database_url),
            storage_condition(exc) or exc,
        )
        return 1
    try:
        running = create_server(
            settings.listen,
            app.services,
            app.feed,
            max_workers=settings.threads,
            max_uploads=settings.max_uploads,
            upload_idle_seconds=settings.upload_idle_seconds,
            max_message_bytes=settings.max_message_bytes,
            reuse_port=ready_fd is not None,
            guard=guard,
            metrics=counted,
            credentials=tls.credentials() if tls else None,
        )
    except OSError as exc:
        log.error("%s", exc)
        app.close()
        return 1
    running.server.start()
    http = None
    if settings.http_listen:
        try:
            http = _start_http(settings, running, guard, tls, http_socket)
        except OSError as exc:
            log.error("%s", exc)
            running.stop(None)
            app.close()
            return 1
        if ready_fd is None:
            _announce_http(settings.http_listen, http.port, tls is not None)
    running.set_serving()
    revision = app.live.current.revision
    if ready_fd is None:
        _announce(settings.listen, running.port, revision)
    else:
        os.write(ready_fd, f"{revision}\n".encode())
        os.close(ready_fd)

    # Returns at once if a signal came while starting.
    while signal.sigwait(_SERVE_SIGNALS) == signal.SIGHUP:
        _reload(settings, guard, tls)
    log.info(
        "draining: health NOT_SERVING for %.1fs, then %.1fs grace for in-flight calls",
        settings.drain_seconds,
        settings.grace_seconds,
    )
    running.begin_draining()
    # Further signals stay pending, unheeded: a process manager that signals every process of
    # the group, or a supervisor forwarding a burst, still gets the whole (bounded) drain.
    time.sleep(settings.drain_seconds)
    app.feed.close()  # watchers are told at once (UNAVAILABLE) and reconnect elsewhere
    stopping = threading.Thread(target=http.stop) if http is not None else None
    if stopping is not None:  # both ports drain at once, each within the grace period
        stopping.start()
    running.stop(settings.grace_seconds)
    if stopping is not None:
        stopping.join()
    app.close()
    if counted is not None:
        counted.close()
    log.info("stopped")
    return 0


def _start_http(
    settings: config.Settings,
    running: RunningServer,
    guard: Guard | None,
    tls: ServerTls | None,
    sock: socket.socket | None,
) -> HttpServer:
    """The JSON API over HTTP beside the gRPC port, calling the same handlers (http_api.py)."""
    from .http_api import HttpApi
    from .http_server import HttpServer

    host = settings.http_listen.rsplit(":", 1)[0]
    api = HttpApi(
        running.handlers, guard, running.streams.pool, settings.threads, listen_host=host
    )
    server = HttpServer(
        api,
        settings.http_listen,
        sock=sock,
        ssl_context=tls.ssl_context() if tls is not None else None,
        shutdown_timeout=settings.grace_seconds,
    )
    server.start()
    return server


def _announce_http(listen: str, port: int, secure: bool) -> None:
    host = listen.rsplit(":", 1)[0]
    scheme = "https" if secure else "http"
    # Printed before the serving line, so that whoever waits for that one can read this too.
    print(f"modelconfigd serving JSON over HTTP on {scheme}://{host}:{port}", flush=True)


def _announce(listen: str, port: int, revision: int, workers: int = 1) -> None:
    host = listen.rsplit(":", 1)[0]
    extra = f", {workers} workers" if workers > 1 else ""
    # Tests and scripts read this line to learn the port when MODELCONFIG_LISTEN ends in :0.
    print(f"modelconfigd serving on {host}:{port} (revision {revision}{extra})", flush=True)


def _supervise(settings: config.Settings) -> int:
    try:  # each worker loads them: find unusable files before forking (with no grpc object)
        if settings.tls:
            read_tls_files(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        if settings.tokens_file:
            load_tokens(settings.tokens_file)
    except _SECURITY_ERRORS as exc:
        log.error("%s", exc)
        return 1
    try:
        db = open_database(settings.database_url)
        migrate(db)  # once, here, so workers start on a current schema
        db.close()
    except _OPEN_ERRORS as exc:
        log.error(
            "cannot open the database (%s): %s",
            describe(settings.database_url),
            storage_condition(exc) or exc,
        )
        return 1
    host, _, port_text = settings.listen.rpartition(":")
    # Port 0 asks for any free port: reserve one that every worker can then share. The socket
    # is bound but never listens, so it receives no connections; it closes once workers serve.
    reserved = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        reserved.bind((host.strip("[]"), int(port_text)))
        lock = _lock_port(reserved.getsockname()[1])
    except OSError as exc:
        reserved.close()
        log.error("cannot listen on %s: %s", settings.listen, exc)
        return 1
    directory = None
    try:
        if settings.metrics_listen:
            directory = metrics.use_multiprocess_directory()  # before a worker imports the library
            metrics.serve(settings.metrics_listen)
        with lock, reserved:
            http_socket = None
            if settings.http_listen:
                from .http_server import listening_socket

                http_socket = listening_socket(settings.http_listen)
            with http_socket or contextlib.nullcontext():
                return _Supervisor(settings, reserved, http_socket).run()
    except OSError as exc:
        log.error("%s", exc)
        return 1
    finally:
        if directory is not None:
            metrics.remove_multiprocess_directory(directory)


def _lock_port(port: int) -> socket.socket:
    """Hold `port` for this supervisor and its workers alone, until they have all exited.

    SO_REUSEPORT lets the workers share the port, but it would as well let a second
    supervisor's workers join them and answer half of the calls from another database (a
    single-process daemon binds without it, so the kernel refuses that clash). The lock is an
    abstract Unix socket name: no file to clean up, and the kernel frees it when the last
    process holding it (workers inherit it) exits, however it exits.
    """
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lock.bind(f"\0modelconfigd:{port}")
    except OSError:
        lock.close()
        raise OSError(f"another modelconfigd with workers serves port {port}") from None
    return lock


class _Supervisor:
    """Forks the workers, replaces one that dies, stops them all on SIGTERM/SIGINT.

    Single-threaded and signal-driven: the main loop takes each signal with sigtimedwait and is
    the only code that touches the bookkeeping, so no handler can run in the middle of it.
    """

    def __init__(
        self,
        settings: config.Settings,
        reserved: socket.socket,
        http_socket: socket.socket | None = None,
    ) -> None:
        self.port = reserved.getsockname()[1]
        host = settings.listen.rpartition(":")[0]
        self.listen = settings.listen
        self.settings = config.Settings(**{**settings.__dict__, "listen": f"{host}:{self.port}"})
        self.reserved = reserved
        # The workers all accept on this one listening socket (HTTP has no SO_REUSEPORT
        # dance to do: the socket is bound once, here, before any worker exists).
        self.http_socket = http_socket
        self.children: dict[int, int] = {}  # pid -> worker index
        self.restarts: dict[int, float] = {}  # worker index -> when to start it again
        self.revisions: list[int] = []  # announced by workers as they serve
        self.unread = b""  # the start of an announcement not read whole yet
        self.started = False  # every first worker served
        self.stopping = False
        self.failed = False
        self.deadline = time.monotonic() + _START_TIMEOUT
        # Workers write their snapshot revision here once they serve. The supervisor keeps the
        # write end open for the workers it starts later.
        self.ready_read, self.ready_write = os.pipe()
        os.set_blocking(self.ready_read, False)

    def run(self) -> int:
        try:
            for index in range(self.settings.workers):
                self._start(index)
            while self.children or self.restarts:
                self._handle(_next_signal(self._timeout()))
        finally:
            os.close(self.ready_read)
            os.close(self.ready_write)
        return 1 if self.failed else 0

    def _start(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker; it never returns into the supervisor's code
            code = 1
            try:
                os.close(self.ready_read)
                code = _serve(
                    self.settings, ready_fd=self.ready_write, http_socket=self.http_socket
                )
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                os._exit(code)
        self.children[pid] = index

    def _timeout(self) -> float | None:
        """How long to wait for the next signal: until the next restart is due, and in short
        steps while the workers start, to read their announcements."""
        due = [when - time.monotonic() for when in self.restarts.values()]
        if not self.started and not self.stopping:
            due.append(0.05)
        return max(0.0, min(due)) if due else None

    def _handle(self, signum: int | None) -> None:
        if signum in _STOP_SIGNALS:
            self._stop()
        elif signum == signal.SIGHUP:
            for pid in self.children:
                _kill(pid, signal.SIGHUP)
        elif signum == signal.SIGCHLD:
            self._reap()
        self._read_announcements()
        if not self.started and not self.stopping and time.monotonic() > self.deadline:
            self._fail(f"workers did not all serve within {_START_TIMEOUT:.0f}s")
        for index, when in list(self.restarts.items()):
            if when <= time.monotonic():
                del self.restarts[index]
                self._start(index)

    def _stop(self) -> None:
        self.stopping = True
        self.restarts.clear()
        for pid in self.children:
            _kill(pid, signal.SIGTERM)

    def _fail(self, reason: str) -> None:
        log.error("%s; stopping", reason)
        self.failed = True
        self._stop()

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            index = self.children.pop(pid, None)
            if index is not None:
                if self.settings.metrics_listen:
                    metrics.worker_exited(pid)
                self._exited(index, pid, os.waitstatus_to_exitcode(status))

    def _exited(self, index: int, pid: int, code: int) -> None:
        if self.stopping:
            self.failed |= code != 0
        elif not self.started:
            self._fail(f"worker {index} (pid {pid}) exited with {code} before serving")
        else:
            log.error("worker %d (pid %d) exited with %d; restarting it", index, pid, code)
            self.restarts[index] = time.monotonic() + _RESTART_DELAY

    def _read_announcements(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self.ready_read, 4096):
                *lines, self.unread = (self.unread + chunk).split(b"\n")
                self.revisions += [int(line) for line in lines]
        if not self.started and len(self.revisions) >= self.settings.workers:
            self.started = True
            self.reserved.close()
            if not self.stopping:
                if self.http_socket is not None:
                    _announce_http(
                        self.settings.http_listen,
                        self.http_socket.getsockname()[1],
                        self.settings.tls,
                    )
                _announce(self.listen, self.port, max(self.revisions), self.settings.workers)


def _next_signal(timeout: float | None) -> int | None:
    """The next supervisor signal, or None if `timeout` seconds pass first."""
    if timeout is None:
        return signal.sigwaitinfo(_SUPERVISOR_SIGNALS).si_signo
    info = signal.sigtimedwait(_SUPERVISOR_SIGNALS, timeout)
    return info.si_signo if info is not None else None


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


if __name__ == "__main__":
    sys.exit(main())
