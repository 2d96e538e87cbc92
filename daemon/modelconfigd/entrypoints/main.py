"""modelconfigd: migrate, load the snapshot, serve; on SIGTERM drain in-flight calls and exit 0."""

from __future__ import annotations

import logging
import signal
import sys
import threading

import peewee

from .. import config
from ..domain.errors import StorageUnavailable
from .app import App
from .grpc_server import create_server

log = logging.getLogger("modelconfigd")


def main(argv: list[str] | None = None) -> int:
    settings = config.parse(argv)
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    try:
        app = App.open(settings.database_url, poll_interval=settings.poll_interval)
    except (ValueError, RuntimeError, StorageUnavailable, peewee.DatabaseError) as exc:
        log.error("cannot open the database %s: %s", _redacted(settings.database_url), exc)
        return 1
    try:
        running = create_server(settings.listen, app.services, max_workers=settings.threads)
    except OSError as exc:
        log.error("%s", exc)
        app.close()
        return 1
    running.server.start()
    running.set_serving()
    host = settings.listen.rsplit(":", 1)[0]
    # Tests and scripts read this line to learn the port when MODELCONFIG_LISTEN ends in :0.
    print(
        f"modelconfigd serving on {host}:{running.port} (revision {app.live.current.revision})",
        flush=True,
    )
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


def _redacted(url: str) -> str:
    """The URL without a password, for the log."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"


if __name__ == "__main__":
    sys.exit(main())
