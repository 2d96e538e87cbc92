"""modelconfigd: migrate, load the snapshot, serve; on SIGTERM drain in-flight calls and exit 0.

With --workers N, a supervisor migrates once, then forks N processes that share the port with
SO_REUSEPORT (forked before any gRPC object exists, as grpcio requires); each keeps its own
snapshot and catches up with the others' writes by polling. The supervisor forwards SIGTERM and
restarts a worker that dies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time

import peewee

from .. import config
from ..adapters.database import describe, open_database
from ..adapters.migrations import migrate
from ..domain.errors import StorageUnavailable
from .app import App
from .grpc_server import create_server

log = logging.getLogger("modelconfigd")
_OPEN_ERRORS = (ValueError, RuntimeError, OSError, StorageUnavailable, peewee.DatabaseError)


# SIGTERM and SIGINT are blocked in every thread and process (see main) and taken synchronously
# by the main thread: a signal sent at any moment stays pending until it is taken, is never
# delivered to a thread that cannot act on it, and never runs a handler in the middle of other
# code (a handler's Event.set() could wait forever for the Event's lock its thread was holding).
_STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
_SUPERVISOR_SIGNALS = _STOP_SIGNALS | {signal.SIGCHLD}
_START_TIMEOUT = 120.0  # seconds the workers may take to serve
_RESTART_DELAY = 1.0  # no tight restart loop when a worker cannot start at all


def main(argv: list[str] | None = None) -> int:
    settings = config.parse(argv)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for signum in _SUPERVISOR_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)  # an inherited SIG_IGN would discard them
    # Before any thread or worker exists: both inherit the mask.
    signal.pthread_sigmask(signal.SIG_BLOCK, _SUPERVISOR_SIGNALS)
    # Before opening it, so that a failure to open names it too.
    log.info("database: %s", describe(settings.database_url))
    if settings.workers == 1:
        return _serve(settings)
    return _supervise(settings)


def _serve(settings: config.Settings, ready_fd: int | None = None) -> int:
    """Serve until SIGTERM/SIGINT, then drain. Announces readiness on stdout or on `ready_fd`."""
    try:
        # A worker (ready_fd given) starts after its supervisor has migrated the database.
        app = App.open(
            settings.database_url,
            poll_interval=settings.poll_interval,
            migrated=ready_fd is not None,
        )
    except _OPEN_ERRORS as exc:
        log.error("cannot open the database (%s): %s", describe(settings.database_url), exc)
        return 1
    try:
        running = create_server(
            settings.listen,
            app.services,
            max_workers=settings.threads,
            reuse_port=ready_fd is not None,
        )
    except OSError as exc:
        log.error("%s", exc)
        app.close()
        return 1
    running.server.start()
    running.set_serving()
    revision = app.live.current.revision
    if ready_fd is None:
        _announce(settings.listen, running.port, revision)
    else:
        os.write(ready_fd, f"{revision}\n".encode())
        os.close(ready_fd)

    signal.sigwait(_STOP_SIGNALS)  # returns at once if one came while starting
    log.info(
        "draining: health NOT_SERVING for %.1fs, then %.1fs grace for in-flight calls",
        settings.drain_seconds,
        settings.grace_seconds,
    )
    running.begin_draining()
    # Further signals stay pending, unheeded: a process manager that signals every process of
    # the group, or a supervisor forwarding a burst, still gets the whole (bounded) drain.
    time.sleep(settings.drain_seconds)
    running.stop(settings.grace_seconds)
    app.close()
    log.info("stopped")
    return 0


def _announce(listen: str, port: int, revision: int, workers: int = 1) -> None:
    host = listen.rsplit(":", 1)[0]
    extra = f", {workers} workers" if workers > 1 else ""
    # Tests and scripts read this line to learn the port when MODELCONFIG_LISTEN ends in :0.
    print(f"modelconfigd serving on {host}:{port} (revision {revision}{extra})", flush=True)


def _supervise(settings: config.Settings) -> int:
    try:
        db = open_database(settings.database_url)
        migrate(db)  # once, here, so workers start on a current schema
        db.close()
    except _OPEN_ERRORS as exc:
        log.error("cannot open the database (%s): %s", describe(settings.database_url), exc)
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
    with lock, reserved:
        return _Supervisor(settings, reserved).run()


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

    def __init__(self, settings: config.Settings, reserved: socket.socket) -> None:
        self.port = reserved.getsockname()[1]
        host = settings.listen.rpartition(":")[0]
        self.listen = settings.listen
        self.settings = config.Settings(**{**settings.__dict__, "listen": f"{host}:{self.port}"})
        self.reserved = reserved
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
                code = _serve(self.settings, ready_fd=self.ready_write)
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
