"""What the daemon logs about its database: where it is, never the password."""

import os

import pytest

from modelconfigd.adapters.database import describe, open_database


def test_sqlite_is_described_by_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert describe("sqlite:///var/modelconfig.db") == f"SQLite {tmp_path}/var/modelconfig.db"
    assert describe("sqlite:////srv/m.db") == "SQLite /srv/m.db"
    assert os.getcwd() == str(tmp_path)


def test_postgres_is_described_by_host_port_database_and_user_with_the_password_masked():
    described = describe("postgresql://app:s3cret@db.internal:6432/modelconfig?sslmode=require")
    assert described == "PostgreSQL database modelconfig on db.internal:6432 as app (password ***)"


def test_postgres_password_in_the_query_is_masked_too():
    described = describe("postgres://app@db.internal/modelconfig?password=s3cret")
    assert "s3cret" not in described
    assert described == (
        "PostgreSQL database modelconfig on db.internal:(default port) as app (password ***)"
    )


def test_an_unsupported_url_is_refused_without_echoing_its_password():
    with pytest.raises(ValueError, match="unsupported database URL scheme 'mysql'") as err:
        open_database("mysql://admin:hunter2@db.internal/models")
    assert "hunter2" not in str(err.value)
