"""Opening a SQLite database waits for another connection's write lock instead of failing."""

from __future__ import annotations

import sqlite3
import threading
import time

from modelconfigd.adapters.database import open_database


def test_connecting_to_a_fresh_file_waits_while_another_connection_holds_the_write_lock(tmp_path):
    path = tmp_path / "modelconfig.db"
    # What a second daemon starting beside the first meets: the first holds the write lock on
    # the new, not yet WAL, file (switching it to WAL or migrating it).
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE first (id INTEGER)")
    releasing = threading.Event()

    def release_after_a_second() -> None:
        time.sleep(1.0)
        releasing.set()
        holder.execute("COMMIT")

    thread = threading.Thread(target=release_after_a_second)
    thread.start()
    db = open_database(f"sqlite:///{path}")
    try:
        db.connect()
        assert releasing.is_set(), "connected while the other connection held the write lock"
        assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000
    finally:
        thread.join()
        db.close()
        holder.close()
