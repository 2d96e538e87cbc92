"""LocalResolver against a live daemon on SQLite and PostgreSQL: the same answers as
ResolveForAccount at the same revision across a write storm, in both account modes; refusals
like the daemon's; reconnection after a restart, stale marking, resync after compaction."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from modelconfig import InvalidArgument, LocalResolver, NotFound, Unauthenticated
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb
from modelconfigd.domain.access import Role

from .process_helpers import free_port
from .secure_helpers import wait_for
from .test_auth import start_guarded, token_of, tokens_file

ACCOUNTS = ["acme", "globex", "initech", "umbrella", "never-seen"]
SLOT_SETS = [(), ("openai_model",), ("dalle_model", "openai_model"), ("runware_model",) * 2]


@pytest.fixture(params=["all", "on_demand"])
def resolver(request, daemon):
    with LocalResolver(daemon.address, accounts=request.param, start_timeout=10) as local:
        yield local


def assert_same_answers(client, local: LocalResolver) -> None:
    """Every account and slot set, as the daemon answers it now and as the resolver does at
    the daemon's revision."""
    revision = client.get_global_settings().revision
    assert local.wait_for_revision(revision, timeout=10), "the resolver did not catch up"
    for account in ACCOUNTS:
        for slots in SLOT_SETS:
            remote = client.resolve_for_account(account, slots=list(slots))
            assert remote.revision == revision, "a write came in between: the test is wrong"
            assert local.resolve(account, slots) == remote, (account, slots)


def storm(client) -> Iterator[object]:
    """Writes of every kind that changes a resolution, each followed by a comparison."""
    exported = list(client.export_configuration())
    yield client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
    yield client.set_model("dalle_model", "dall-e-3", account_id="globex")
    yield client.set_model("openai_model", "gpt-3.5-turbo", scope=pb.SCOPE_GLOBAL)
    yield client.set_model("openai_model", "gpt-4-turbo-2024-04-09", account_id="acme")
    deactivated = client.get_model("gpt-4-turbo-2024-04-09").model
    deactivated.is_active = False
    yield client.update_model(deactivated, ["is_active"]).model  # acme's override is now skipped
    yield client.clear_account_model("acme", "openai_model")
    yield client.import_overrides(
        [
            api.OverrideRecord(account_id=account, slot="openai_model", model_name="gpt-4o-mini")
            for account in ("initech", "umbrella", "globex")
        ]
    )
    imported = client.list_changes(page_size=1).changes[0].revision
    deactivated.is_active = True
    yield client.update_model(deactivated, ["is_active"]).model
    yield client.revert_change(imported)
    yield client.clear_global_model("openai_model")
    today = datetime.now(UTC).date().isoformat()
    yield client.update_model(pb.Model(id=1, deprecation_date=today), ["deprecation_date"]).model
    yield client.set_model("openai_model", "gpt-4o-mini", account_id="umbrella")
    retired = client.retire_model(1, 13)  # the default and umbrella's override move
    yield retired
    yield client.revert_change(retired.revision)
    yield client.apply_configuration(  # back to the start: the overrides too
        exported[0].configuration, [r for part in exported for r in part.overrides]
    )


def test_the_resolver_answers_what_the_daemon_answers_across_a_write_storm(client, resolver):
    assert_same_answers(client, resolver)
    for _ in storm(client):
        assert_same_answers(client, resolver)


def test_a_write_is_visible_after_wait_for_revision(client, resolver):
    revision = client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme").revision
    assert resolver.wait_for_revision(revision, timeout=10)
    assert resolver.resolve("acme", ("openai_model",)).slots[0].model.model_name == "gpt-3.5-turbo"
    assert resolver.revision >= revision
    assert resolver.staleness == 0.0 and resolver.status == "ready"


@pytest.mark.parametrize(
    ("account", "slots", "reason"),
    [
        ("", (), "ACCOUNT_ID_REQUIRED"),
        ("bad id", (), "INVALID_ACCOUNT_ID"),
        ("acme", ("no_such_slot",), "UNKNOWN_SLOT"),
    ],
)
def test_bad_requests_are_refused_as_the_daemon_refuses_them(
    client, resolver, account, slots, reason
):
    with pytest.raises(InvalidArgument) as remote:
        client.resolve_for_account(account, slots=list(slots))
    with pytest.raises(InvalidArgument) as local:
        resolver.resolve(account, slots)
    assert local.value.reason == remote.value.reason == reason
    assert local.value.metadata == remote.value.metadata
    assert local.value.message == remote.value.message


def test_on_demand_holds_at_most_its_bound(daemon):
    with LocalResolver(daemon.address, accounts="on_demand", max_accounts=2) as local:
        for account in ("a1", "a2", "a3", "a1"):
            local.resolve(account)
        assert local.accounts_held == 2


def test_on_change_names_the_slots_whose_resolution_may_have_changed(client, daemon):
    seen: list[tuple[int, set[str]]] = []
    with LocalResolver(daemon.address, on_change=lambda r, s: seen.append((r, s))) as local:
        revision = client.set_model("dalle_model", "dall-e-3", account_id="acme").revision
        assert local.wait_for_revision(revision, timeout=10)
        assert wait_for(lambda: seen and seen[-1][0] == revision)
        assert seen[-1] == (revision, {"dalle_model"})


def test_an_unknown_token_is_fatal_at_start(tmp_path):
    guarded = start_guarded(f"sqlite:///{tmp_path}/db.sqlite", tokens_file(tmp_path / "t.toml"))
    try:
        with pytest.raises(Unauthenticated):
            LocalResolver(guarded.address, token="not-a-token", start_timeout=10)
        reader = LocalResolver(guarded.address, token=token_of(Role.READER), start_timeout=10)
        assert reader.resolve("acme").account_id == "acme"
        reader.close()
    finally:
        guarded.stop()


def test_it_keeps_answering_while_the_daemon_is_away_and_resumes_after_a_restart(daemons, tmp_path):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    listen = f"127.0.0.1:{free_port()}"
    first = daemons.start(url, listen=listen)
    local = LocalResolver(listen, backoff_start=0.05, backoff_cap=0.2, grace=1.0)
    try:
        with first.client() as client:
            client.set_model("openai_model", "gpt-3.5-turbo", account_id="acme")
            before = client.resolve_for_account("acme")
        assert local.wait_for_revision(before.revision, timeout=10)
        first.terminate()
        first.wait_exit()
        assert wait_for(lambda: local.status == "stale", timeout=10)
        assert local.resolve("acme") == before, "it answers from what it has"
        assert wait_for(lambda: local.status == "error", timeout=10), "after the grace period"
        assert local.staleness > 1.0
        second = daemons.start(url, listen=listen)
        with second.client() as client:
            revision = client.set_model("openai_model", "gpt-4o-mini", account_id="acme").revision
            after = client.resolve_for_account("acme")
        assert local.wait_for_revision(revision, timeout=15)
        assert local.resolve("acme") == after
        assert local.status == "ready"
    finally:
        local.close()


def test_a_compacted_revision_makes_it_reload_everything(daemons, tmp_path, caplog):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    listen = f"127.0.0.1:{free_port()}"
    keep = {"MODELCONFIG_CHANGES_KEEP": "2"}
    first = daemons.start(url, listen=listen, env=keep)
    local = LocalResolver(listen, backoff_start=0.05, backoff_cap=0.2, grace=1.0)
    try:
        first.terminate()
        first.wait_exit()
        # Writes the resolver misses, more than the next daemon keeps for replay.
        other = daemons.start(url, env=keep)
        with other.client() as client:
            for model in ["gpt-3.5-turbo", "gpt-4o-mini"] * 3:
                client.set_model("openai_model", model, account_id="acme")
        other.terminate()
        other.wait_exit()
        second = daemons.start(url, listen=listen, env=keep)
        with second.client() as client:
            expected = client.resolve_for_account("acme")
        with caplog.at_level("WARNING", logger="modelconfig._local"):
            assert local.wait_for_revision(expected.revision, timeout=15)
        assert local.resolve("acme") == expected
        assert "was compacted: reloading everything" in caplog.text
    finally:
        local.close()


def test_close_joins_its_thread(daemon):
    local = LocalResolver(daemon.address)
    local.close()
    assert not local._thread.is_alive()


@pytest.mark.parametrize("accounts", ["all", "on_demand"])
def test_a_resolver_of_some_slots_answers_those_with_the_accounts_etag(client, daemon, accounts):
    with LocalResolver(daemon.address, slots=["openai_model"], accounts=accounts) as local:
        assert local.slots == ("openai_model",)
        for _ in storm(client):
            revision = client.get_global_settings().revision
            assert local.wait_for_revision(revision, timeout=10)
            for account in ACCOUNTS:
                remote = client.resolve_for_account(account, slots=["openai_model"])
                assert local.resolve(account) == remote
        # A change of a slot it does not hold still moves the account's etag.
        revision = client.set_model("dalle_model", "dall-e-3", account_id="acme").revision
        assert local.wait_for_revision(revision, timeout=10)
        assert local.resolve("acme").etag == f"a{revision}"
        with pytest.raises(InvalidArgument) as refused:
            local.resolve("acme", ("dalle_model",))
        assert refused.value.reason == "SLOT_NOT_HELD"


@pytest.mark.parametrize("accounts", ["all", "on_demand"])
def test_it_converges_to_the_daemon_after_concurrent_writes_and_reads(client, daemon, accounts):
    """Writers and readers at once (on demand: fetches racing the feed's updates); afterwards
    every account answers as the daemon does, and no read ever saw the revision go back."""
    names = [f"storm-{i}" for i in range(20)]
    models = ["gpt-4o-mini", "gpt-3.5-turbo", "gpt-4-turbo-2024-04-09"]
    stop = threading.Event()
    problems: list[str] = []

    with LocalResolver(daemon.address, accounts=accounts, max_accounts=10) as local:

        def write(seed: int) -> None:
            rng = random.Random(seed)
            while not stop.is_set():
                account = rng.choice(names)
                if rng.random() < 0.2:
                    with contextlib.suppress(NotFound):  # it may have none to clear
                        client.clear_account_model(account, "openai_model")
                else:
                    client.set_model("openai_model", rng.choice(models), account_id=account)

        def read(seed: int) -> None:
            rng = random.Random(seed)
            last = 0
            while not stop.is_set():
                answer = local.resolve(rng.choice(names))
                if answer.revision < last:
                    problems.append(f"revision went back from {last} to {answer.revision}")
                last = answer.revision

        threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
        threads += [threading.Thread(target=read, args=(10 + i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        stop.wait(3.0)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert not problems, problems[:3]
        revision = client.get_global_settings().revision
        assert local.wait_for_revision(revision, timeout=10)
        for account in names:
            assert local.resolve(account) == client.resolve_for_account(account), account


def test_cached_answers_are_dropped_when_the_utc_day_changes(client, resolver):
    """`deprecated` depends on the day: answers cached on one day are not served the next."""
    from datetime import timedelta

    resolver.resolve("acme", ("openai_model",))
    state = resolver._state
    assert state.answers
    resolver._day -= timedelta(days=1)  # as if the answers were made before midnight
    resolver._forget_answers_of_another_day()  # what the next heartbeat does
    assert not state.answers
    assert resolver._day == datetime.now(UTC).date()
