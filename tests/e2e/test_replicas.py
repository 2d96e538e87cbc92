"""Daemons sharing one PostgreSQL database: a commit reaches the others by notification, not by
the poll; and a database outage, through a TCP proxy cut and restored, leaves reads and watches
served, refuses writes with UNAVAILABLE, says so in the log and the metrics, and heals."""

from __future__ import annotations

import time
import urllib.request
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest
from grpc_health.v1 import health_pb2

from modelconfig import Unavailable

from .process_helpers import free_port
from .secure_helpers import wait_for
from .tcp_proxy import TcpProxy
from .test_watch import Watch, changes_of

# So slow that only a notification can bring a commit within the tests' waits.
NO_POLL = {"MODELCONFIG_POLL_INTERVAL": "600"}


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_commit_reaches_the_other_daemons_by_notification(daemons, database_url):
    writer = daemons.start(database_url, env=NO_POLL)
    replicas = [daemons.start(database_url, env=NO_POLL) for _ in range(2)]
    watches = [Watch(r.client()._stub) for r in replicas]
    try:
        for watch in watches:
            watch.next()
        with writer.client() as client:
            revisions = [
                client.set_model("openai_model", model, account_id="acme").revision
                for model in ("gpt-3.5-turbo", "gpt-4o-mini", "gpt-3.5-turbo")
            ]
        for replica, watch in zip(replicas, watches, strict=True):
            seen = [c.revision for c in changes_of(watch.until(revisions[-1], timeout=10))]
            assert seen == revisions, "every revision, once, in order: never backwards"
            with replica.client() as client:
                resolved = client.resolve_for_account("acme", slots=["openai_model"])
            assert resolved.revision == revisions[-1]
            assert resolved.slots[0].model.model_name == "gpt-3.5-turbo"
    finally:
        for watch in watches:
            watch.close()


def _through(proxy: TcpProxy, database_url: str) -> str:
    parts = urlsplit(database_url)
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _database_up(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("modelconfig_database_up "):
                return float(line.split()[1])
    raise AssertionError("modelconfig_database_up is not exported")


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_an_outage_keeps_reads_refuses_writes_and_heals(daemons, database_url):
    target = urlsplit(database_url)
    proxy = TcpProxy((target.hostname, target.port or 5432))
    metrics_port = free_port()
    daemon = daemons.start(
        _through(proxy, database_url),
        env={
            "MODELCONFIG_POLL_INTERVAL": "0.2",
            "MODELCONFIG_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        },
    )
    client = daemon.client(timeout=30)
    watch = Watch(client._stub)
    try:
        watch.next()
        acknowledged = client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
        watch.until(acknowledged.revision)

        proxy.cut()
        started = time.monotonic()
        with pytest.raises(Unavailable) as refused:
            client.set_model("openai_model", "gpt-4o-mini", account_id="acme")
        assert refused.value.reason == "STORAGE_UNAVAILABLE"
        assert time.monotonic() - started < 15, "a write is refused within a bounded time"
        resolved = client.resolve_for_account("acme", slots=["openai_model"])
        assert resolved.slots[0].model.model_name == "gpt-3.5-turbo"
        assert daemon.health() == health_pb2.HealthCheckResponse.SERVING
        assert wait_for(lambda: _database_up(metrics_port) == 0.0), "the metrics say so"
        assert wait_for(lambda: "the database is out of reach" in daemon.stderr())
        assert watch.error is None and not watch.ended.is_set(), "the watch stays open"

        proxy.restore()
        assert wait_for(lambda: _database_up(metrics_port) == 1.0, timeout=20)

        def write() -> int | None:
            try:
                return client.set_model("openai_model", "gpt-4o-mini", account_id="acme").revision
            except Unavailable:
                return None  # a connection dropped by the cut costs one UNAVAILABLE

        revision = wait_for(write, timeout=20)
        assert revision == acknowledged.revision + 1, "nothing acknowledged was lost or doubled"
        assert [c.revision for c in changes_of(watch.until(revision))] == [revision]
        assert "the database is back" in daemon.stderr()
        recorded = [c.revision for c in client.list_changes(page_size=2).changes]
        assert recorded == [revision, acknowledged.revision]
    finally:
        watch.close()
        client.close()
        proxy.close()


def test_a_watch_of_a_stopped_daemon_ends_unavailable(daemons, tmp_path):
    daemon = daemons.start(f"sqlite:///{tmp_path}/db.sqlite")
    watch = Watch(daemon.client()._stub)
    watch.next()
    daemon.terminate()
    code, reason, _ = watch.failure(timeout=20)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert reason in ("DRAINING", ""), "told by the daemon, or by the closed connection"
