"""Database faults under a running daemon: PostgreSQL restarted and stopped, a connection killed
mid-transaction, a server turned read-only; under SQLite a full disk and a read-only file. Every
refusal is a deliberate status with an ErrorInfo reason, reads go on from the snapshot, no write
is half-applied, and writes work again without restarting the daemon.

test_recovery.py (every connection dropped) and test_replicas.py (a TCP proxy cut) cover the
network side; here the database server itself goes away, or the disk refuses.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psycopg
import pytest

from modelconfig import ModelConfigError, StorageFull
from modelconfig.v1 import model_config_service_pb2 as api

from .process_helpers import DaemonProcess, Daemons, free_port
from .secure_helpers import wait_for
from .test_watch import Watch, changes_of

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SLOT, MODEL = "openai_model", "gpt-4o-mini"


# -- a private PostgreSQL cluster (never the shared server: that one is not ours to restart) -----


def _as_postgres(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *args],
        capture_output=True, text=True, timeout=timeout, check=True,
    )


@dataclass
class Cluster:
    """A PostgreSQL 15 cluster of our own, in a temporary directory, on a free port."""

    root: Path
    port: int

    @property
    def data(self) -> str:
        return str(self.root / "data")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", self.data, "-l", str(self.root / "log"),
                     "-o", options, "-w", "-t", "60", action, *extra)

    def log(self) -> str:
        return (self.root / "log").read_text(errors="replace")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0 or not (PG_BIN / "initdb").exists() or not shutil.which("runuser"):
        pytest.skip(f"needs root and PostgreSQL 15 in {PG_BIN} for a private cluster; NOT RUN")
    root = Path(tempfile.mkdtemp(prefix="modelconfig-pg-"))
    shutil.chown(root, "postgres", "postgres")
    found = Cluster(root, free_port())
    try:
        _as_postgres(str(PG_BIN / "initdb"), "-D", found.data, "-A", "trust", "-U", "postgres",
                     "--no-sync", "-E", "UTF8")
        found.ctl("start")
        yield found
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            found.ctl("stop", "-m", "immediate")
        shutil.rmtree(root, ignore_errors=True)


# -- writes and reads beside the fault ------------------------------------------------------------


@dataclass
class Writes:
    """SetModel on a new account each time (so each write is one row in every table); outcomes."""

    daemon: DaemonProcess
    prefix: str
    acknowledged: dict[str, int] = field(default_factory=dict)
    refused: dict[str, ModelConfigError] = field(default_factory=dict)
    _count: int = 0

    def one(self) -> int | None:
        account = f"{self.prefix}-{self._count}"
        self._count += 1
        with self.daemon.client(timeout=30) as client:
            try:
                revision = client.set_model(SLOT, MODEL, account_id=account).revision
            except ModelConfigError as exc:
                self.refused[account] = exc
                return None
        self.acknowledged[account] = revision
        return revision

    def storm(self, stop: threading.Event) -> threading.Thread:
        """Writes back to back, in a thread, until `stop` is set."""

        def run() -> None:
            while not stop.is_set():
                self.one()
                time.sleep(0.02)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def refusals(self) -> set[tuple[str, str]]:
        return {(exc.code.name, exc.reason) for exc in self.refused.values()}


class Reads:
    """ResolveForAccount back to back through the raw stub (no client retry), in a thread."""

    def __init__(self, daemon: DaemonProcess, account: str) -> None:
        self.stub = daemon.client()._stub
        self.request = api.ResolveForAccountRequest(account_id=account, slots=[SLOT])
        self.served = 0
        self.failed: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.stub.ResolveForAccount(self.request, timeout=10)
                self.served += 1
            except grpc.RpcError as error:
                self.failed.append(f"{error.code().name}: {error.details()}")
            time.sleep(0.01)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def _first_success(write: Callable[[], int | None], timeout: float = 60) -> int:
    revision = wait_for(write, timeout=timeout, interval=0.2)
    assert revision, f"no write succeeded within {timeout}s of the database coming back"
    return revision


# -- what the database holds ---------------------------------------------------------------------

_ROWS = (
    "SELECT (SELECT count(*) FROM account_override WHERE account_id = {p}),"
    " (SELECT count(*) FROM change WHERE account_id = {p}),"
    " (SELECT count(*) FROM override_change WHERE account_id = {p})"
)


def _rows_per_write(query: Callable[[str, tuple], list[tuple]], placeholder: str,
                    accounts: list[str]) -> dict[str, tuple[int, int, int]]:
    sql = _ROWS.format(p=placeholder)
    return {account: tuple(query(sql, (account,) * 3)[0]) for account in accounts}


def _check_all_or_nothing(writes: Writes, rows: dict[str, tuple[int, int, int]]) -> int:
    """Every acknowledged write whole; every refused one whole or absent. Returns how many
    refused writes are absent (the rest committed before their connection died: an UNAVAILABLE
    promises nothing about a write in flight, but it is never half there)."""
    for account, revision in writes.acknowledged.items():
        assert rows[account] == (1, 1, 1), f"acknowledged {account} (r{revision}): {rows[account]}"
    absent = 0
    for account in writes.refused:
        assert rows[account] in ((0, 0, 0), (1, 1, 1)), f"{account} half-applied: {rows[account]}"
        absent += rows[account] == (0, 0, 0)
    return absent


def _revisions_contiguous(query: Callable[[str, tuple], list[tuple]]) -> None:
    (low, high, count), = query("SELECT min(revision), max(revision), count(*) FROM change", ())
    (state,), = query("SELECT revision FROM state", ())
    assert count == high - low + 1 and state == high, "one revision per commit, no gap"


def _pg_query(url: str) -> Callable[[str, tuple], list[tuple]]:
    def query(sql: str, params: tuple) -> list[tuple]:
        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    return query


def _sqlite_query(path: Path) -> Callable[[str, tuple], list[tuple]]:
    def query(sql: str, params: tuple) -> list[tuple]:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    return query


# -- (a) PostgreSQL restarted, and stopped then started ------------------------------------------


def test_postgres_restarted_and_stopped_under_writes(daemons: Daemons, cluster: Cluster):
    daemon = daemons.start(cluster.url, env={"MODELCONFIG_POLL_INTERVAL": "0.2"})
    writes = Writes(daemon, "w")
    before = writes.one()
    assert before
    reads = Reads(daemon, "w-0")
    watch = Watch(daemon.client()._stub)
    watch.next(timeout=30)
    stop = threading.Event()
    storm = writes.storm(stop)
    try:
        time.sleep(1)
        cluster.ctl("restart", "-m", "fast")  # every connection of the daemon is cut
        time.sleep(1)
        cluster.ctl("stop", "-m", "fast")
        during = Writes(daemon, "down")
        for _ in range(3):  # with the server down, every write is refused, none hangs
            assert during.one() is None
        assert during.refusals() == {("UNAVAILABLE", "STORAGE_UNAVAILABLE")}, during.refused
        assert wait_for(lambda: "the database is out of reach" in daemon.stderr(), timeout=30)
        served = reads.served
        assert wait_for(lambda: reads.served > served + 5), "reads go on with the server down"
        cluster.ctl("start")
        _first_success(writes.one)
        time.sleep(1)  # the storm runs on the restarted server for a while
    finally:
        stop.set()
        storm.join(timeout=60)
        reads.finish()
    assert not reads.failed, reads.failed[:5]
    assert writes.refusals() <= {("UNAVAILABLE", "STORAGE_UNAVAILABLE")}, writes.refused
    assert wait_for(lambda: "the database is back" in daemon.stderr(), timeout=30)
    after = writes.one()
    assert after, "writes work again without restarting the daemon"

    query = _pg_query(cluster.url)
    rows = _rows_per_write(query, "%s", [*writes.acknowledged, *writes.refused, *during.refused])
    absent = _check_all_or_nothing(writes, rows)
    assert all(rows[a] == (0, 0, 0) for a in during.refused), "nothing of a write to a stopped db"
    _revisions_contiguous(query)
    with daemon.client() as client:  # the daemon's snapshot caught up with every commit
        assert client.resolve_for_account("w-0", slots=[SLOT]).revision == after
    try:  # and the change feed, open throughout, delivered every one
        fed = {c.revision for c in changes_of(watch.until(after, timeout=30))}
        assert watch.error is None, watch.error
    finally:
        watch.close()
    committed = {r for (r,) in query("SELECT revision FROM change WHERE revision > %s", (before,))}
    assert committed <= fed, f"revisions never fed: {sorted(committed - fed)}"
    print(f"\npostgres restart+stop: {len(writes.acknowledged)} writes acknowledged, "
          f"{len(writes.refused)} refused (UNAVAILABLE STORAGE_UNAVAILABLE; {absent} absent, "
          f"{len(writes.refused) - absent} committed before their connection died), "
          f"{reads.served} reads served, 0 failed")


# -- (b) a connection killed mid-transaction -----------------------------------------------------


def test_a_connection_killed_mid_transaction(daemons: Daemons, cluster: Cluster):
    daemon = daemons.start(cluster.url)
    writes = Writes(daemon, "k")
    assert writes.one()
    with psycopg.connect(cluster.url) as blocker:
        # The daemon's write transaction begins by locking the state row: hold that lock, so
        # the write waits inside its transaction (BEGIN done, lock requested, nothing written).
        blocker.execute("SELECT revision FROM state WHERE id = 1 FOR UPDATE")
        outcome: list[int | None] = []
        writer = threading.Thread(target=lambda: outcome.append(writes.one()), daemon=True)
        writer.start()

        def waiting_backend() -> int | None:
            found = blocker.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND pid <> pg_backend_pid() AND datname = current_database()"
            ).fetchall()
            return found[0][0] if found else None

        pid = wait_for(waiting_backend, timeout=30)
        assert pid, "the daemon's write never waited for the lock"
        blocker.execute("SELECT pg_terminate_backend(%s)", (pid,))
        writer.join(timeout=60)
        blocker.rollback()
    assert outcome == [None], "the killed write is refused"
    (refused,) = writes.refused.values()
    assert (refused.code, refused.reason) in {
        (grpc.StatusCode.UNAVAILABLE, "STORAGE_UNAVAILABLE"),
        (grpc.StatusCode.ABORTED, "ABORTED"),
    }, refused
    assert writes.one(), "the next write succeeds, without a restart"
    query = _pg_query(cluster.url)
    rows = _rows_per_write(query, "%s", [*writes.acknowledged, *writes.refused])
    assert _check_all_or_nothing(writes, rows) == 1, "the killed write left nothing"
    _revisions_contiguous(query)
    assert "WARNING" in daemon.stderr() and refused.reason in daemon.stderr()
    print(f"\nkilled mid-transaction: {refused.code.name} {refused.reason}: {refused.message}")


# -- SQLite on a small disk of its own -----------------------------------------------------------


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 8 MiB tmpfs of our own (requested before `daemons`, so it is unmounted after them)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; NOT RUN")
    root = Path(tempfile.mkdtemp(prefix="modelconfig-disk-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(root)],
                   check=True, capture_output=True)
    try:
        yield root
    finally:
        for path in root.iterdir():
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
        # Lazy: detached at once even if something still holds a file there.
        subprocess.run(["umount", "-l", str(root)], check=True, capture_output=True)
        root.rmdir()


def _fill(disk: Path) -> Path:
    """A filler file taking every free byte of the disk."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    assert shutil.disk_usage(disk).free == 0
    return filler


def _first_refusal(writes: Writes, attempts: int = 500) -> None:
    """Write until one is refused: SQLite reuses WAL space it already has, so the first writes
    on a full disk may still fit; the WAL must grow, and cannot, within a few hundred."""
    for _ in range(attempts):
        if writes.one() is None:
            return
    raise AssertionError(f"{attempts} writes on a full disk all succeeded")


def test_a_full_disk_refuses_writes_keeps_reads_and_recovers(small_disk: Path, daemons: Daemons):
    db = small_disk / "db.sqlite"
    daemon = daemons.start(f"sqlite:///{db}")
    writes = Writes(daemon, "f")
    for _ in range(5):
        assert writes.one()
    reads = Reads(daemon, "f-0")
    try:
        filler = _fill(small_disk)
        _first_refusal(writes)
        for _ in range(3):
            writes.one()
        assert writes.refusals() == {("RESOURCE_EXHAUSTED", "STORAGE_FULL")}, writes.refused
        # the client's class says that retrying will not help until space is freed
        assert all(isinstance(e, StorageFull) for e in writes.refused.values()), writes.refused
        assert "WARNING" in daemon.stderr() and "the disk holding the database is full" in (
            daemon.stderr()), "the operator is told, in the log"
        served = reads.served
        assert wait_for(lambda: reads.served > served + 5), "reads go on with the disk full"
        filler.unlink()
        assert writes.one(), "space freed: the next write succeeds, without a restart"
    finally:
        reads.finish()
    assert not reads.failed, reads.failed[:5]
    daemon.terminate()
    assert daemon.wait_exit() == 0
    query = _sqlite_query(db)
    rows = _rows_per_write(query, "?", [*writes.acknowledged, *writes.refused])
    absent = _check_all_or_nothing(writes, rows)
    assert absent == len(writes.refused), "a refused write left nothing"
    _revisions_contiguous(query)
    print(f"\ndisk full: {len(writes.acknowledged)} writes acknowledged, {len(writes.refused)} "
          f"refused RESOURCE_EXHAUSTED STORAGE_FULL, none of them in the database; "
          f"{reads.served} reads served, 0 failed")


def test_a_daemon_started_on_a_full_disk_says_so(small_disk: Path, daemons: Daemons):
    _fill(small_disk)
    daemon = daemons.spawn(f"sqlite:///{small_disk}/db.sqlite")
    assert daemon.wait_exit(timeout=60) == 1
    assert "the disk holding the database is full" in daemon.stderr(), daemon.stderr()


# -- a read-only database file -------------------------------------------------------------------


def _immutable(path: Path, on: bool) -> None:
    done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True,
                          text=True)
    if done.returncode and on:
        pytest.skip(f"chattr +i is not supported here ({done.stderr.strip()}); NOT RUN")
    assert done.returncode == 0, done.stderr


def test_a_read_only_database_refuses_writes_keeps_reads_and_recovers(
    small_disk: Path, daemons: Daemons
):
    # Read-only while the daemon runs cannot be made: a read-only remount is refused (EBUSY)
    # while the daemon holds the file open for writing, and an immutable file stays writable
    # through descriptors opened before. So the daemon starts on the read-only file, as after
    # a reboot onto a file system remounted read-only.
    db = small_disk / "db.sqlite"
    first = daemons.start(f"sqlite:///{db}")
    writes = Writes(first, "r")
    assert writes.one()
    first.terminate()
    assert first.wait_exit() == 0
    _immutable(db, True)
    daemon = daemons.start(f"sqlite:///{db}")
    writes.daemon = daemon
    reads = Reads(daemon, "r-0")
    try:
        for _ in range(3):
            assert writes.one() is None
        assert writes.refusals() == {("UNAVAILABLE", "DATABASE_READ_ONLY")}, writes.refused
        assert "WARNING" in daemon.stderr() and "the database is read-only" in daemon.stderr()
        with daemon.client() as client:
            resolved = client.resolve_for_account("r-0", slots=[SLOT])
        assert resolved.slots[0].model.model_name == MODEL, "reads are served"
        _immutable(db, False)
        assert writes.one(), "writable again: the next write succeeds, without a restart"
    finally:
        reads.finish()
    assert not reads.failed, reads.failed[:5]
    daemon.terminate()
    assert daemon.wait_exit() == 0
    query = _sqlite_query(db)
    rows = _rows_per_write(query, "?", [*writes.acknowledged, *writes.refused])
    assert _check_all_or_nothing(writes, rows) == 3, "a refused write left nothing"
    _revisions_contiguous(query)


def test_a_read_only_postgres_refuses_writes_keeps_reads_and_recovers(
    daemons: Daemons, cluster: Cluster
):
    # What a server that turned read-only (a demoted primary, a standby) answers every write.
    daemon = daemons.start(cluster.url)
    writes = Writes(daemon, "p")
    assert writes.one()

    def read_only(on: bool) -> None:
        with psycopg.connect(cluster.url, autocommit=True) as admin:
            value = "on" if on else "off"
            admin.execute(f"ALTER SYSTEM SET default_transaction_read_only = {value}")
            admin.execute("SELECT pg_reload_conf()")

    read_only(True)
    assert wait_for(lambda: writes.one() is None, timeout=30), "writes refused once read-only"
    for _ in range(2):
        assert writes.one() is None
    assert writes.refusals() == {("UNAVAILABLE", "DATABASE_READ_ONLY")}, writes.refused
    assert "WARNING" in daemon.stderr() and "the database is read-only" in daemon.stderr()
    with daemon.client() as client:
        assert client.resolve_for_account("p-0", slots=[SLOT]).slots[0].model.model_name == MODEL
    read_only(False)
    assert wait_for(writes.one, timeout=30, interval=0.2), "writable again, without a restart"
    query = _pg_query(cluster.url)
    rows = _rows_per_write(query, "%s", [*writes.acknowledged, *writes.refused])
    absent = _check_all_or_nothing(writes, rows)
    assert absent == len(writes.refused), "a refused write left nothing"
    _revisions_contiguous(query)
