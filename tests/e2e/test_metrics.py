"""Prometheus metrics of a real process (MODELCONFIG_METRICS_LISTEN): gRPC calls under
go-grpc-prometheus's names, the snapshot's gauges, resolutions per slot and source, one scrape
for --workers 2, a taken metrics port, and nothing listening by default.

Counters are compared before and after the calls a test makes; values flushed once a second
(resolutions) and gauges of other workers are polled for with a deadline.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelconfig import InvalidArgument, ModelConfigClient, Unauthenticated

from .process_helpers import DaemonProcess, free_port
from .secure_helpers import exit_message, wait_for

SERVICE = "modelconfig.v1.ModelConfigService"
RESOLVE = {"grpc_service": SERVICE, "grpc_method": "ResolveForAccount", "grpc_type": "unary"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/modelconfig.db"


class Scraped:
    """A daemon with /metrics on its own port."""

    def __init__(self, daemon: DaemonProcess, port: int) -> None:
        self.daemon, self.port = daemon, port

    def scrape(self) -> Samples:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            assert r.status == 200
            text = r.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return (value(after, name, **labels) or 0.0) - (value(before, name, **labels) or 0.0)


def start_scraped(daemons, url: str, **env: str) -> Scraped:
    port = free_port()
    daemon = daemons.start(url, env={"MODELCONFIG_METRICS_LISTEN": f"127.0.0.1:{port}", **env})
    return Scraped(daemon, port)


@pytest.fixture
def scraped(daemons, sqlite_url) -> Scraped:
    return start_scraped(daemons, sqlite_url)


@pytest.fixture
def workers(daemons, sqlite_url) -> Scraped:
    return start_scraped(daemons, sqlite_url, MODELCONFIG_WORKERS="2")


@pytest.fixture
def connections(workers) -> Iterator[list[ModelConfigClient]]:
    """Clients on 16 distinct connections, which the kernel spreads over the workers (all 16
    on one of two workers has odds 1 in 32768)."""
    channels = [grpc.insecure_channel(workers.daemon.address, options=[("test.conn", i)])
                for i in range(16)]
    try:
        yield [ModelConfigClient(channel=channel) for channel in channels]
    finally:
        for channel in channels:
            channel.close()


# -- gRPC calls --------------------------------------------------------------------------------


def test_calls_are_counted_started_and_handled_ok_exactly(scraped):
    client = scraped.daemon.client()
    before = scraped.scrape()
    for _ in range(5):
        client.resolve_for_account("acme")
    after = scraped.scrape()
    assert delta(before, after, "grpc_server_started_total", **RESOLVE) == 5
    assert delta(before, after, "grpc_server_handled_total", grpc_code="OK", **RESOLVE) == 5


def test_a_refused_call_is_counted_under_its_code(scraped):
    client = scraped.daemon.client()
    before = scraped.scrape()
    with pytest.raises(InvalidArgument):
        client.resolve_for_account("")
    after = scraped.scrape()
    assert delta(before, after, "grpc_server_handled_total",
                 grpc_code="InvalidArgument", **RESOLVE) == 1
    assert delta(before, after, "grpc_server_handled_total", grpc_code="OK", **RESOLVE) == 0


def test_each_call_is_timed_in_the_handling_histogram(scraped):
    client = scraped.daemon.client()
    before = scraped.scrape()
    for _ in range(3):
        client.list_models()
    after = scraped.scrape()
    labels = {**RESOLVE, "grpc_method": "ListModels"}
    assert delta(before, after, "grpc_server_handling_seconds_count", **labels) == 3
    assert delta(before, after, "grpc_server_handling_seconds_bucket", le="+Inf", **labels) == 3


# -- the snapshot ------------------------------------------------------------------------------


def test_the_revision_gauge_is_the_daemons_revision_after_a_write(daemons, database_url):
    scraped = start_scraped(daemons, database_url)
    assert value(scraped.scrape(), "modelconfig_revision") == 1
    written = scraped.daemon.client().set_model(
        "openai_model", "gpt-3.5-turbo", account_id="acme")
    assert written.revision == 2
    seen = wait_for(lambda: value(scraped.scrape(), "modelconfig_revision") == written.revision)
    assert seen, f"modelconfig_revision is {value(scraped.scrape(), 'modelconfig_revision')}"


def test_accounts_with_overrides_counts_accounts_not_overrides(scraped):
    client = scraped.daemon.client()
    assert value(scraped.scrape(), "modelconfig_accounts_with_overrides") == 0
    client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
    client.set_model("dalle_model", "dall-e-3", account_id="acme")
    client.set_model("openai_model", "gpt-3.5-turbo", account_id="globex")
    counted = wait_for(
        lambda: value(scraped.scrape(), "modelconfig_accounts_with_overrides") == 2)
    assert counted, value(scraped.scrape(), "modelconfig_accounts_with_overrides")


def test_resolutions_count_each_slot_of_each_resolution_by_source(scraped):
    client = scraped.daemon.client()
    client.set_model("openai_model", "gpt-3.5-turbo", account_id="acct-b")
    before = scraped.scrape()
    for _ in range(3):
        client.resolve_for_account("acct-a")  # every slot; anthropic_model has no global
    for _ in range(2):
        client.resolve_for_account("acct-b", ["openai_model"])
    client.resolve_for_accounts(["acct-a", "acct-b", "not valid!"], ["openai_model"])
    expected = {
        ("openai_model", "global"): 4,
        ("dalle_model", "global"): 3,
        ("runware_model", "global"): 3,
        ("anthropic_model", "default"): 3,
        ("openai_model", "account"): 3,
    }

    def counted() -> dict[tuple[str, str], float]:
        after = scraped.scrape()
        return {
            (slot, source): delta(before, after, "modelconfig_resolutions_total",
                                  slot=slot, source=source)
            for slot in ("openai_model", "dalle_model", "runware_model", "anthropic_model")
            for source in ("account", "global", "default")
            if delta(before, after, "modelconfig_resolutions_total", slot=slot, source=source)
        }

    # Tallied on the hot path and added to the counters once a second.
    assert wait_for(lambda: counted() == expected), counted()


def test_snapshot_lag_is_exported(scraped):
    lag = value(scraped.scrape(), "modelconfig_snapshot_lag_seconds")
    assert lag is not None and lag >= 0


def test_auth_failures_are_exported_by_reason(daemons, sqlite_url, tmp_path):
    tokens = tmp_path / "tokens.toml"
    tokens.write_text("")
    scraped = start_scraped(daemons, sqlite_url, MODELCONFIG_TOKENS_FILE=str(tokens))
    with ModelConfigClient(scraped.daemon.address, token="tok-unknown") as stranger:
        for _ in range(2):
            with pytest.raises(Unauthenticated):
                stranger.resolve_for_account("acme")
    samples = scraped.scrape()
    assert value(samples, "modelconfig_auth_failures_total", reason="TOKEN_UNKNOWN") == 2


# -- --workers 2: one scrape -------------------------------------------------------------------


def test_one_scrape_sums_the_calls_of_every_worker(workers, connections):
    before = workers.scrape()
    for client in connections:
        client.resolve_for_account("acme")
    summed = wait_for(lambda: delta(before, workers.scrape(), "grpc_server_handled_total",
                                    grpc_code="OK", **RESOLVE) == 16)
    after = workers.scrape()
    assert summed, delta(before, after, "grpc_server_handled_total", grpc_code="OK", **RESOLVE)
    assert delta(before, after, "grpc_server_started_total", **RESOLVE) == 16


def test_one_scrape_shows_the_workers_revision(workers, connections):
    written = connections[0].set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
    revisions = [s for (name, _), s in workers.scrape().items() if name == "modelconfig_revision"]
    assert len(revisions) == 1, revisions  # one value for the daemon, not one per process
    seen = wait_for(lambda: value(workers.scrape(), "modelconfig_revision") == written.revision)
    assert seen, value(workers.scrape(), "modelconfig_revision")


# -- the metrics port --------------------------------------------------------------------------


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_metrics_port_already_taken_stops_the_start(daemons, sqlite_url, processes):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        daemon = daemons.spawn(sqlite_url, env={
            "MODELCONFIG_METRICS_LISTEN": listen, "MODELCONFIG_WORKERS": processes})
        code, stderr = exit_message(daemon)
    assert code == 1, daemon.describe("did not exit 1")
    assert listen in stderr, daemon.describe("the metrics address is not named")


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on (its sockets, matched in /proc/net/tcp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_without_metrics_listen_only_the_grpc_port_listens(daemons, sqlite_url):
    daemon = daemons.start(sqlite_url)
    assert listening_ports(daemon.proc.pid) == {daemon.port}


def test_with_metrics_listen_the_metrics_port_listens_too(scraped):
    assert listening_ports(scraped.daemon.proc.pid) == {scraped.daemon.port, scraped.port}
