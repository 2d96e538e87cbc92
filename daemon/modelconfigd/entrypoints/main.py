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
import threading
import time

import peewee

from .. import config
from ..adapters.database import open_database
from ..adapters.migrations import migrate
from ..domain.errors import StorageUnavailable
from .app import App
from .grpc_server import create_server

log = logging.getLogger("modelconfigd")
_OPEN_ERRORS = (ValueError, RuntimeError, StorageUnavailable, peewee.DatabaseError)


def main(argv: list[str] | None = None) -> int:
    settings = config.parse(argv)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if settings.workers == 1:
        return _serve(settings)
    return _supervise(settings)


def _serve(settings: config.Settings, ready_fd: int | None = None) -> int:
    """Serve until SIGTERM/SIGINT, then drain. Announces readiness on stdout or on `ready_fd`."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        # A worker (ready_fd given) starts after its supervisor has migrated the database.
        app = App.open(
            settings.database_url,
            poll_interval=settings.poll_interval,
            migrated=ready_fd is not None,
        )
    except _OPEN_ERRORS as exc:
        log.error("cannot open the database %s: %s", _redacted(settings.database_url), exc)
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
    log.info("database %s", _redacted(settings.database_url))

    stop.wait()
    log.info(
        "draining: health NOT_SERVING for %.1fs, then %.1fs grace for in-flight calls",
        settings.drain_seconds,
        settings.grace_seconds,
    )
    running.begin_draining()
    stop.clear()
    stop.wait(settings.drain_seconds)
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
        log.error("cannot open the database %s: %s", _redacted(settings.database_url), exc)
        return 1
    host, _, port_text = settings.listen.rpartition(":")
    # Port 0 asks for any free port: reserve one that every worker can then share. The socket
    # is bound but never listens, so it receives no connections; it closes once workers serve.
    reserved = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        reserved.bind((host.strip("[]"), int(port_text)))
    except OSError as exc:
        log.error("cannot listen on %s: %s", settings.listen, exc)
        return 1
    port = reserved.getsockname()[1]
    listen = f"{host}:{port}"
    worker_settings = config.Settings(**{**settings.__dict__, "listen": listen})

    stopping = False
    children: dict[int, int] = {}
    read_fd, write_fd = os.pipe()

    def start(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(read_fd)
            code = 1
            try:
                code = _serve(worker_settings, ready_fd=write_fd)
            finally:
                os._exit(code)
        children[pid] = index

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            _kill(pid, signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    for index in range(settings.workers):
        start(index)
    os.close(write_fd)
    revisions = _wait_ready(read_fd, settings.workers)
    reserved.close()
    if revisions is None:
        log.error("workers did not all start; stopping")
        forward(signal.SIGTERM, None)
    else:
        _announce(settings.listen, port, max(revisions), settings.workers)

    failed = False
    while children:
        pid, status = os.wait()
        index = children.pop(pid, None)
        if index is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            failed |= code != 0
            continue
        log.error("worker %d (pid %d) exited with %d; restarting it", index, pid, code)
        time.sleep(1)  # no tight restart loop when a worker cannot start at all
        start(index)
    return 1 if failed or revisions is None else 0


def _wait_ready(read_fd: int, workers: int, timeout: float = 120.0) -> list[int] | None:
    """Each worker writes its snapshot revision when it serves; None if not all did in time."""
    deadline = time.monotonic() + timeout
    buffer = b""
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while buffer.count(b"\n") < workers and time.monotonic() < deadline:
            chunk = pipe.read(64)
            if not chunk:  # every write end closed: a worker died before serving
                break
            buffer += chunk
    lines = buffer.split(b"\n")[:workers]
    return [int(line) for line in lines] if len(lines) == workers and all(lines) else None


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _redacted(url: str) -> str:
    """The URL without a password, for the log."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"


if __name__ == "__main__":
    sys.exit(main())
