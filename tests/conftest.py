"""Shared fixtures: a real database (SQLite file or PostgreSQL schema) and a daemon on a real port.

PostgreSQL tests use MODELCONFIG_TEST_POSTGRES_URL (default: the local server, user postgres).
One database is created per test run and each test gets its own schema in it. Where no server
answers they are skipped with a loud reason, unless MODELCONFIG_REQUIRE_POSTGRES=1 (CI), where
they fail instead.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import grpc
import psycopg
import pytest

from modelconfig import ModelConfigClient
from modelconfig.v1 import model_config_service_pb2_grpc as api_grpc
from modelconfigd.entrypoints.app import App
from modelconfigd.entrypoints.grpc_server import RunningServer, create_server
from modelconfigd.service_layer.change_feed import DEFAULT_KEEP, KeepPolicy

POSTGRES_URL = os.environ.get(
    "MODELCONFIG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("MODELCONFIG_REQUIRE_POSTGRES") == "1"
# `make soak` sets it: tests marked `soak` then run their long forms (more kills, more examples,
# ten minutes of load) instead of the short ones `make test` runs.
SOAK = os.environ.get("MODELCONFIG_SOAK") == "1"
_schema_numbers = itertools.count(1)
_postgres_skip_reason: list[str] = []


def _with_database(url: str, database: str, query: str = "") -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", query, ""))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run (xdist workers get one each)."""
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL at {POSTGRES_URL} is not reachable ({exc}); PostgreSQL tests NOT RUN"
        if REQUIRE_POSTGRES:
            pytest.fail(f"MODELCONFIG_REQUIRE_POSTGRES=1 but {reason}")
        _postgres_skip_reason.append(reason)
        pytest.skip(reason)
    name = f"modelconfig_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(POSTGRES_URL, name)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_terminal_summary(terminalreporter) -> None:
    if _postgres_skip_reason:
        terminalreporter.section("PostgreSQL tests skipped", sep="!", red=True, bold=True)
        terminalreporter.line(_postgres_skip_reason[0], red=True)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path) -> str:
    """An empty database of each engine: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/modelconfig.db"
    base = request.getfixturevalue("postgres_database")
    schema = f"t{os.getpid()}_{next(_schema_numbers)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return _with_database(
        base, urlsplit(base).path.lstrip("/"), "options=" + quote(f"-csearch_path={schema}")
    )


@dataclass
class Daemon:
    """A daemon serving on a real port in this process, with a client and a raw stub."""

    url: str
    app: App
    running: RunningServer
    channel: grpc.Channel
    client: ModelConfigClient
    stub: api_grpc.ModelConfigServiceStub

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    def stop(self) -> None:
        self.client.close()
        self.channel.close()
        self.running.stop(None)
        self.app.close()


def start_daemon(
    url: str,
    *,
    keep: KeepPolicy = DEFAULT_KEEP,
    audit_keep: KeepPolicy | None = None,
    max_streams: int = 200,
    **server_options,
) -> Daemon:
    """`server_options` go to create_server (max_uploads, upload_idle_seconds, ...)."""
    app = App.open(url, poll_interval=0.05, keep=keep, audit_keep=audit_keep)
    running = create_server(
        "127.0.0.1:0",
        app.services,
        app.feed,
        max_workers=4,
        max_streams=max_streams,
        **server_options,
    )
    running.server.start()
    running.set_serving()
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    client = ModelConfigClient(channel=channel)
    return Daemon(url, app, running, channel, client, api_grpc.ModelConfigServiceStub(channel))


@pytest.fixture
def daemon(database_url) -> Iterator[Daemon]:
    d = start_daemon(database_url)
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def client(daemon) -> ModelConfigClient:
    return daemon.client
