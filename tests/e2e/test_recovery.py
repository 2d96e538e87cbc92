"""The daemon outlives its database connections: a dropped connection costs one UNAVAILABLE."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from modelconfig import Unavailable


def kill_connections(database_url: str) -> int:
    parts = urlsplit(database_url)
    admin_url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return killed[0]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_writes_recover_after_the_server_drops_every_connection(daemon, database_url):
    client = daemon.client
    client.set_model("openai_model", 2, account_id="before")
    assert kill_connections(database_url) >= 1

    outcomes = []
    for attempt in range(12):  # each RPC thread may meet its dead connection once
        try:
            reply = client.set_model("openai_model", 3, account_id=f"after-{attempt}")
        except Unavailable as exc:
            outcomes.append(exc.reason)
            continue
        outcomes.append("ok")
        break
    assert outcomes[-1] == "ok", outcomes
    assert set(outcomes[:-1]) <= {"STORAGE_UNAVAILABLE"}
    resolved = client.resolve_for_account(f"after-{len(outcomes) - 1}", ["openai_model"])
    assert (resolved.slots[0].model.id, resolved.revision) == (3, reply.revision)
