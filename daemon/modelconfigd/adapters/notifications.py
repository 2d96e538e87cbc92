"""Commits announced through PostgreSQL's LISTEN/NOTIFY, so other daemons catch up at once.

Every write transaction notifies, on commit, a channel named after the schema it writes to
(tests and tenants may share a database); each daemon listens on its own connection and
catches up when told. The revision poll stays as the safety net: a notification is lost while
the listener reconnects, and a daemon catches up once more whenever it has reconnected.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from peewee import Database

from ..domain.errors import StorageUnavailable

log = logging.getLogger(__name__)

# PostgreSQL identifiers are at most 63 bytes; the prefix leaves room for most schema names.
_CHANNEL_SQL = "left('modelconfig_' || current_schema(), 63)"


def notify_on_commit(db: Database, revision: int) -> None:
    """Within a write transaction: announce `revision` when (and only if) it commits."""
    db.execute_sql(f"SELECT pg_notify({_CHANNEL_SQL}, %s)", (str(revision),))


class CommitListener:
    """A thread that calls `on_commit` whenever another connection's write commits (and once
    after every (re)connection, for what it may have missed)."""

    RETRY_SECONDS = 1.0
    WAKE_SECONDS = 1.0  # how often it looks up from waiting, to notice `stop`

    def __init__(self, url: str, on_commit: Callable[[], None]) -> None:
        self._url = url
        self._on_commit = on_commit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelconfig-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: the thread ends, closing its connection, within WAKE_SECONDS
        (not joined: a daemon closing its App should not wait for it)."""
        self._stop.set()

    def _run(self) -> None:
        down = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    channel = conn.execute(f"SELECT {_CHANNEL_SQL}").fetchone()[0]
                    conn.execute(f'LISTEN "{channel}"')
                    if down:
                        log.info("listening for commits again")
                    down = False
                    self._told()
                    while not self._stop.is_set():
                        told = False
                        for _ in conn.notifies(timeout=self.WAKE_SECONDS, stop_after=1):
                            told = True
                        if told:
                            self._drain(conn)
                            self._told()
            except psycopg.Error as exc:
                if not down:
                    log.warning("not listening for commits (the poll goes on): %s", exc)
                down = True
                self._stop.wait(self.RETRY_SECONDS)

    @staticmethod
    def _drain(conn: psycopg.Connection) -> None:
        """Take the notifications already queued: one catch-up covers them all."""
        for _ in conn.notifies(timeout=0):
            pass

    def _told(self) -> None:
        if self._stop.is_set():
            return  # stopped: the store may be closed already
        try:
            self._on_commit()
        except StorageUnavailable as exc:  # the poll reports outages; it covers this one too
            log.debug("catching up after a notification failed: %s", exc)
        except Exception:  # the poll covers it; the next notification tries again
            log.exception("catching up after a notification failed")
