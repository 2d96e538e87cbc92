"""The daemon as operators run it: a real `modelconfigd` process on each engine.

Start-up (serving line, health), SIGTERM draining, restarts on the same database, a SIGKILL in
the middle of writes, two daemons on one fresh database, and a port that is already taken.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2

from modelconfig import ModelConfigClient, Unavailable
from modelconfig.v1 import resources_pb2 as pb
from modelconfigd.adapters.migrations import load_seed

from .process_helpers import SERVICE_NAME, daemon_command, free_port

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SEEDED_IDS = [m["id"] for m in load_seed()["models"]]
TEXT_MODELS = ("gpt-4o-mini", "gpt-3.5-turbo")  # both fit the slot openai_model


def _ids(client: ModelConfigClient) -> list[int]:
    return [m.id for m in client.iter_models()]


def _wait_for(predicate, timeout: float, interval: float = 0.02):
    """Poll `predicate` until it returns something truthy or `timeout` passes; returns the last."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)


# -- 1. health ----------------------------------------------------------------------------------


def test_health_answers_serving_once_the_serving_line_is_printed(daemons, database_url):
    daemon = daemons.start(database_url)

    channel = daemon.channel()
    assert daemon.health("", channel) == SERVING, daemon.describe("overall health")
    assert daemon.health(SERVICE_NAME, channel) == SERVING, daemon.describe("service health")
    assert daemon.revision == 1  # a fresh database holds the seed only


# -- 2. SIGTERM drains --------------------------------------------------------------------------


def test_sigterm_reports_not_serving_while_still_answering_then_exits_zero(
    daemons, database_url
):
    # A drain window wide enough that a loaded CI machine still lands the checks inside it.
    daemon = daemons.start(database_url, drain_seconds=4)
    channel = daemon.channel()
    client = daemon.client()
    assert daemon.health("", channel) == SERVING

    daemon.terminate()

    def draining() -> bool:
        try:
            return (daemon.health("", channel) == NOT_SERVING
                    and daemon.health(SERVICE_NAME, channel) == NOT_SERVING)
        except grpc.RpcError:  # the port already closed: it never reported NOT_SERVING
            return False

    assert _wait_for(draining, timeout=2.5), daemon.describe("health never went NOT_SERVING")
    # Still inside the 4 s drain window: calls keep succeeding while probes see NOT_SERVING.
    resolved = client.resolve_for_account("acme")
    assert resolved.slots[0].model.model_name == "gpt-4o-mini"
    assert daemon.proc.poll() is None, daemon.describe("exited before the drain window ended")

    assert daemon.wait_exit(timeout=15) == 0, daemon.describe("non-zero exit after SIGTERM")


# -- 3. restart persistence ---------------------------------------------------------------------


def _everything(client: ModelConfigClient, accounts: list[str]) -> dict[str, object]:
    """Every read a client can make of the state, for comparing two daemons' answers."""
    models = list(client.iter_models())
    return {
        "models": models,
        "first_page": client.list_models(),
        "global": client.get_global_settings(),
        "resolve": {a: client.resolve_for_account(a) for a in accounts},
        "usage": {m.id: client.get_model_usage(m.id) for m in models},
    }


def test_restart_reads_back_every_write_and_does_not_reseed(daemons, database_url):
    first = daemons.start(database_url)
    client = first.client()
    created = client.create_model(pb.Model(
        model_name="o3-2025-04-16", display_name="OpenAI o3", provider="openai",
        model_type=pb.MODEL_TYPE_TEXT, is_active=True, input_price_per_1m_tokens="2.5",
        output_price_per_1m_tokens="10", context_window=128000, max_output_tokens=16384,
        aliases=["o3"],
    )).model
    assert created.id == max(SEEDED_IDS) + 1
    set_global = client.set_global_model("openai_model", created.id)
    kept = client.set_model("anthropic_model", "claude-3-haiku-20240307", account_id="acct-keep")
    client.set_model("dalle_model", "dall-e-3", account_id="acct-cleared")
    cleared = client.clear_account_model("acct-cleared", "dalle_model")
    accounts = ["acct-keep", "acct-cleared", "acct-never"]
    before = _everything(client, accounts)

    # The writes are what the comparison is about: check they happened before restarting.
    assert before["global"].etag == set_global.etag == f"g{set_global.revision}"
    assert before["global"].slots[0].model.model_name == "o3-2025-04-16"
    keep = before["resolve"]["acct-keep"]
    assert (keep.etag, keep.slots[3].source, keep.slots[3].model.model_name) == (
        kept.etag, pb.SOURCE_ACCOUNT, "claude-3-haiku-20240307")
    gone = before["resolve"]["acct-cleared"]
    assert gone.etag == cleared.etag == f"a{cleared.revision}"
    assert gone.slots[1].source == pb.SOURCE_GLOBAL
    assert before["resolve"]["acct-never"].etag == "a0"
    assert before["first_page"].revision == cleared.revision
    assert [m.id for m in before["models"]] == [*SEEDED_IDS, max(SEEDED_IDS) + 1]

    first.terminate()
    assert first.wait_exit() == 0, first.describe("non-zero exit after SIGTERM")

    second = daemons.start(database_url)
    assert second.revision == cleared.revision, second.describe("revision after restart")
    again = second.client()
    after = _everything(again, accounts)
    for key in before:
        assert after[key] == before[key], f"{key} differs after restart"

    # The seed ran once: ids continue after the created model, never reusing one.
    newer = again.create_model(pb.Model(
        model_name="o1-mini", provider="openai", model_type=pb.MODEL_TYPE_TEXT,
        input_price_per_1m_tokens="0.4", output_price_per_1m_tokens="1.6",
    )).model
    assert newer.id == max(SEEDED_IDS) + 2
    assert _ids(again) == [*SEEDED_IDS, max(SEEDED_IDS) + 1, max(SEEDED_IDS) + 2]
    assert again.list_models().revision == cleared.revision + 1


# -- 4. SIGKILL in the middle of writes ---------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    account_id: str
    model_name: str
    revision: int
    etag: str


def test_sigkill_mid_write_keeps_every_acknowledged_write_and_nothing_half_applied(
    daemons, database_url
):
    first = daemons.start(database_url)
    acked: list[Ack] = []
    attempted: list[tuple[str, str]] = []
    failures: list[Exception] = []
    enough = threading.Event()

    def write_until_the_daemon_dies() -> None:
        with ModelConfigClient(first.address, timeout=10) as client:
            for i in range(100_000):
                account, model = f"acct-{i}", TEXT_MODELS[i % 2]
                attempted.append((account, model))
                try:
                    reply = client.set_model("openai_model", model, account_id=account)
                except Exception as exc:
                    failures.append(exc)
                    return
                acked.append(Ack(account, model, reply.revision, reply.etag))
                if len(acked) >= 30:
                    enough.set()

    writer = threading.Thread(target=write_until_the_daemon_dies, name="writer")
    started = time.monotonic()
    writer.start()
    try:
        assert enough.wait(timeout=30), first.describe(
            f"only {len(acked)} writes acknowledged in 30 s; failures: {failures}")
        # Land the kill at a random point of a write (before, inside or after its commit) by
        # waiting up to one write's mean duration: a timing jitter, not an assertion.
        elapsed = time.monotonic() - started
        time.sleep(random.uniform(0, elapsed / len(acked)))
    finally:
        first.kill()  # SIGKILL while the writer keeps writing
        writer.join(timeout=30)
    assert not writer.is_alive(), "the writer still runs after the daemon was killed"
    assert len(failures) == 1 and isinstance(failures[0], Unavailable), (
        f"the write in flight at the kill should fail UNAVAILABLE, got {failures!r}")

    revisions = [a.revision for a in acked]
    # The only writer, one at a time: each write took the next revision after the seed's 1.
    assert revisions == list(range(2, 2 + len(acked))), revisions
    assert all(a.etag == f"a{a.revision}" for a in acked)

    second = daemons.start(database_url)
    client = second.client()
    assert second.revision >= revisions[-1], second.describe("revision went back")

    acked_by_account = {a.account_id: a for a in acked}
    overridden: dict[str, str] = {}
    never_tried = f"acct-{len(attempted)}"
    for account, model in [*attempted, (never_tried, "")]:
        got = client.resolve_for_account(account, ["openai_model"])
        assert got.revision >= revisions[-1]
        slot = got.slots[0]
        if slot.source == pb.SOURCE_ACCOUNT:
            overridden[account] = slot.model.model_name
            assert slot.model.model_name == model, f"{account} has a model it was never given"
            assert got.etag != "a0" and got.etag.startswith("a"), f"{account}: {got.etag}"
            assert int(got.etag[1:]) <= got.revision
        else:
            assert (slot.source, got.etag) == (pb.SOURCE_GLOBAL, "a0"), (
                f"{account} is half-applied: no override but etag {got.etag}")
        ack = acked_by_account.get(account)
        if ack is not None:
            assert (overridden.get(account), got.etag) == (ack.model_name, ack.etag), (
                f"acknowledged write to {account} (revision {ack.revision}) was lost")
    assert never_tried not in overridden

    # Each committed write took exactly one revision after the seed's: none half-committed.
    assert second.revision == 1 + len(overridden)
    usage = {name: client.get_model_usage(client.get_model(name).model.id) for name in TEXT_MODELS}
    assert sum(u.account_override_count for u in usage.values()) == len(overridden)
    for name, u in usage.items():
        holders = sorted(a for a, m in overridden.items() if m == name)
        assert u.account_override_count == len(holders), name
        assert sorted(u.account_ids) == holders[:100], name


# -- 5. two daemons on one fresh database -------------------------------------------------------


def test_two_daemons_started_together_share_one_database(daemons, database_url):
    a = daemons.spawn(database_url)
    b = daemons.spawn(database_url)
    a.wait_serving()
    b.wait_serving()
    assert (a.revision, b.revision) == (1, 1), "the seed must be applied exactly once"
    client_a, client_b = a.client(), b.client()
    assert _ids(client_a) == SEEDED_IDS
    assert _ids(client_b) == SEEDED_IDS

    written = client_a.set_model("openai_model", "gpt-3.5-turbo", account_id="acct-shared")
    acknowledged = time.monotonic()

    def seen_on_b():
        got = client_b.resolve_for_account("acct-shared", ["openai_model"])
        return got if got.slots[0].source == pb.SOURCE_ACCOUNT else None

    # Visibility is the point, not speed: B polls every 0.5 s, and a loaded machine may be slow.
    got = _wait_for(seen_on_b, timeout=15)
    assert got is not None, (
        f"daemon B did not see A's write ({time.monotonic() - acknowledged:.2f}s)")
    assert got.slots[0].model.model_name == "gpt-3.5-turbo"
    assert (got.revision, got.etag) == (written.revision, written.etag)


# -- 6. port clash ------------------------------------------------------------------------------


def test_second_daemon_on_a_taken_port_exits_non_zero_and_first_keeps_serving(
    daemons, database_url
):
    listen = f"127.0.0.1:{free_port()}"
    first = daemons.start(database_url, listen=listen)
    assert first.address == listen

    second = daemons.spawn(database_url, listen=listen)
    code = second.wait_exit(timeout=15)
    assert code != 0, second.describe("started on a port another daemon holds")
    assert code != -signal.SIGKILL
    assert listen in second.stderr(), second.describe("stderr does not name the taken address")

    assert first.proc.poll() is None, first.describe("the first daemon died")
    assert first.health("") == SERVING
    assert first.client().resolve_for_account("acme").slots[0].model.model_name == "gpt-4o-mini"


def test_helpers_fail_loudly_with_stderr_when_the_daemon_cannot_start(daemons):
    broken = daemons.spawn("mysql://nowhere/db")
    with pytest.raises(AssertionError, match="unsupported database URL"):
        broken.wait_serving(timeout=15)
    assert broken.proc.returncode not in (0, None)



# -- 7. signals ---------------------------------------------------------------------------------


def test_a_burst_of_sigterms_still_drains_and_exits_zero(daemons, database_url):
    daemon = daemons.start(database_url)
    for _ in range(300):  # as one impatient operator or process manager might send them
        daemon.terminate()
    assert daemon.wait_exit(timeout=30) == 0, daemon.describe("no clean exit after the burst")
    assert "draining" in daemon.stderr()


# -- 8. where the database is -------------------------------------------------------------------


def test_the_log_names_the_absolute_path_of_a_relative_sqlite_url(daemons, tmp_path):
    daemon = daemons.start("sqlite:///var/modelconfig.db", cwd=tmp_path)
    assert f"SQLite {tmp_path}/var/modelconfig.db" in daemon.stderr(), daemon.describe("no path")


def test_a_sqlite_file_that_cannot_be_opened_is_named_by_its_absolute_path(daemons, tmp_path):
    (tmp_path / "var").write_text("a file where the folder should be")
    daemon = daemons.spawn("sqlite:///var/modelconfig.db", cwd=tmp_path)
    assert daemon.wait_exit() == 1, daemon.describe("started, or crashed")
    assert f"SQLite {tmp_path}/var/modelconfig.db" in daemon.stderr(), daemon.describe("no path")


# -- 9. a command line that cannot work ---------------------------------------------------------


@pytest.mark.parametrize(("argv", "says"), [
    (["--log-level", "loud"], "argument --log-level: 'loud' is not a log level: DEBUG, INFO, "),
    (["--threads", "many"], "argument --threads: 'many' is not a whole number of at least 1"),
    (["--threads", "0"], "argument --threads: '0' is not a whole number of at least 1"),
    (["--drain-seconds", "-1"], "argument --drain-seconds: '-1' is not a number of seconds"),
    (["--grace-seconds", "nan"], "argument --grace-seconds: 'nan' is not a number of seconds"),
    (["--poll-interval", "inf"], "argument --poll-interval: 'inf' is not a positive number"),
])
def test_a_bad_flag_stops_the_start_with_one_line_and_exit_2(tmp_path, argv, says):
    done = subprocess.run(
        [*daemon_command(), "--database-url", f"sqlite:///{tmp_path}/m.db", *argv],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("MODELCONFIG_")},
    )
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1, done.stderr  # one line, no traceback, no usage block
    assert done.stderr.startswith(f"modelconfigd: error: {says}"), done.stderr


@pytest.mark.parametrize(("variable", "value"), [
    ("MODELCONFIG_LOG_LEVEL", "loud"),
    ("MODELCONFIG_THREADS", "many"),
])
def test_a_bad_variable_stops_the_start_naming_the_variable(daemons, tmp_path, variable, value):
    daemon = daemons.spawn(f"sqlite:///{tmp_path}/m.db", env={variable: value})
    assert daemon.wait_exit(timeout=30) == 2, daemon.describe("did not exit 2")
    stderr = daemon.stderr()
    assert stderr.count("\n") == 1, daemon.describe("not one line")
    assert stderr.startswith(f"modelconfigd: error: {variable} (the default of --"), stderr
    assert f"'{value}' is not" in stderr
