"""One MODELCONFIG_DATABASE_URL picks the engine: `sqlite:///path` (the default) or `postgresql://`."""

from __future__ import annotations

import os
import sqlite3
import time
from urllib.parse import parse_qs, urlsplit

from peewee import Database, PostgresqlDatabase, SqliteDatabase
from playhouse.db_url import parse as parse_url

DEFAULT_URL = "sqlite:///var/modelconfig.db"

# How long a SQLite connection waits for another connection's lock before failing. Given to
# sqlite3.connect, so it is in force from the connection's first statement.
BUSY_TIMEOUT_SECONDS = 10.0

# Foreign keys make SQLite enforce the RESTRICT rules; synchronous=FULL fsyncs every commit, so an
# acknowledged write survives power loss, not only a crash of the daemon (writes are rare, reads
# never touch the database). WAL, which lets the snapshot reader run beside a writer, is switched
# on by _SqliteDatabase.
SQLITE_PRAGMAS = {
    "foreign_keys": 1,
    "synchronous": "full",
}


class _SqliteDatabase(SqliteDatabase):
    """SqliteDatabase whose connections switch the file to WAL, waiting for other writers."""

    def _connect(self) -> sqlite3.Connection:
        conn = super()._connect()
        try:
            _switch_to_wal(conn, self._timeout)
        except BaseException:
            conn.close()
            raise
        return conn


def _switch_to_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """PRAGMA journal_mode=wal, retried while another connection holds the write lock.

    On a file not yet in WAL mode the switch reads the header, then upgrades to a write lock to
    mark the file WAL. SQLite never calls the busy handler for such an upgrade (it could
    deadlock), so while another connection holds the write lock (a second daemon starting at
    the same moment, switching or migrating) the switch fails with SQLITE_BUSY at once, however
    long the busy timeout. A failed switch holds no lock, so waiting and retrying is safe.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode = wal")
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(0.01)


CONNECT_TIMEOUT_SECONDS = 5


def open_database(url: str) -> Database:
    """A (not yet connected) Peewee database for the URL; SQLite's parent folder is created."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
        if not path:
            raise ValueError(f"SQLite URL {url!r} names no file; use sqlite:///path/to/file.db")
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # IMMEDIATE: a write transaction takes the write lock at BEGIN, so two writers queue
        # instead of one failing with "database is locked" when it upgrades a read lock.
        return _SqliteDatabase(
            path,
            pragmas=SQLITE_PRAGMAS,
            timeout=BUSY_TIMEOUT_SECONDS,
            lock_type="IMMEDIATE",
            check_same_thread=False,
        )
    if scheme in ("postgres", "postgresql"):
        params = parse_url(url)
        # An unreachable server fails a call within seconds instead of the OS's minutes.
        params.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
        return PostgresqlDatabase(params.pop("database"), **params)
    # The scheme only: the rest of a URL may hold a password.
    raise ValueError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///... or postgresql://..."
    )


def describe(url: str) -> str:
    """Where the URL's database is, for the log: SQLite's absolute path (a relative one depends
    on the working directory), PostgreSQL's database, host, port and user, never a password."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite" and url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        return "SQLite in memory" if path == ":memory:" else f"SQLite {os.path.abspath(path)}"
    if parts.scheme in ("postgres", "postgresql"):
        try:
            port = parts.port or "(default port)"
        except ValueError:  # not a number; connecting will say so
            port = "(bad port)"
        has_password = parts.password is not None or "password" in parse_qs(parts.query)
        return (
            f"PostgreSQL database {parts.path.lstrip('/') or '(default)'} on "
            f"{parts.hostname or '(default host)'}:{port} as {parts.username or '(default user)'}"
            + (" (password ***)" if has_password else "")
        )
    return f"{parts.scheme or 'unknown'} database (unsupported)"


def is_postgres(db: Database) -> bool:
    return isinstance(db, PostgresqlDatabase)


def read_begin_args(db: Database) -> dict[str, str]:
    """BEGIN arguments for a consistent multi-query read that never blocks writers."""
    if is_postgres(db):
        return {"isolation_level": "REPEATABLE READ"}
    return {"lock_type": "DEFERRED"}


def ensure_connected(db: Database) -> None:
    """Connect this thread, replacing a connection the server dropped (restart, failover).

    Connect before entering a transaction block: connecting resets Peewee's transaction stack.
    A dropped connection is noticed by the first statement that fails on it; that call gets
    UNAVAILABLE, and the next one, here, finds the connection unusable and opens a new one.
    """
    if not db.is_closed() and not db.is_connection_usable():
        db.close()
    db.connect(reuse_if_open=True)
