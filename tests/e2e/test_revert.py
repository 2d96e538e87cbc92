"""RevertChange over a real port on both engines: a new change restoring what one replaced.

A revert goes through the original write's rules, is refused when what the change touched has
changed since (unless forced), and reverting an import restores every account's overrides.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import grpc
import pytest

from modelconfig import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from modelconfig.cli.main import main
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb


def record(line: int, account: str, slot: str, model: int) -> api.OverrideRecord:
    return api.OverrideRecord(line=line, account_id=account, slot=slot, model_id=model)


def current_revision(client) -> int:
    return client.get_global_settings().revision


def newest(client) -> pb.Change:
    return client.list_changes(page_size=1).changes[0]


def override(client, account: str, slot: str = "openai_model") -> int | None:
    """The account's override model id, None when it has none (inactive ones included)."""
    resolved = client.resolve_for_account(account, [slot]).slots[0]
    if resolved.source == pb.SOURCE_ACCOUNT:
        return resolved.model.id
    if resolved.HasField("skipped_override"):
        return resolved.skipped_override.id
    return None


def global_id(client, slot: str) -> int | None:
    s = next(s for s in client.get_global_settings().slots if s.slot == slot)
    return s.model.id if s.HasField("model") else None


def text_model(name: str, **fields) -> pb.Model:
    values = {"provider": "openai", "model_type": pb.MODEL_TYPE_TEXT, "is_active": True, **fields}
    return pb.Model(model_name=name, **values)


def assert_revert_recorded(client, reply, reverted: int, before_revision: int) -> pb.Change:
    assert reply.revision == before_revision + 1 == current_revision(client)
    change = reply.change
    assert (change.revision, change.reverted_revision) == (reply.revision, reverted)
    assert change.method == "RevertChange" and change.actor == "ipv4:127.0.0.1"
    stored = newest(client)
    assert stored == change
    return change


# -- settings ----------------------------------------------------------------------------------


def test_reverting_an_account_set_model_restores_the_previous_override(client):
    client.set_model("openai_model", 2, account_id="acme")
    second = client.set_model("openai_model", 3, account_id="acme")
    reply = client.revert_change(second.revision)
    change = assert_revert_recorded(client, reply, second.revision, second.revision)
    assert (change.kind, change.scope, change.slot, change.account_id) == (
        pb.CHANGE_KIND_SETTING, pb.SCOPE_ACCOUNT, "openai_model", "acme")
    assert (change.before.model_id, change.after.model_id) == (3, 2)
    assert override(client, "acme") == 2
    assert client.resolve_for_account("acme").etag == f"a{reply.revision}"


def test_reverting_the_first_override_removes_it(client):
    first = client.set_model("openai_model", 2, account_id="acme")
    reply = client.revert_change(first.revision)
    change = assert_revert_recorded(client, reply, first.revision, first.revision)
    assert (change.before.model_id, change.after.model_id) == (2, 0)
    resolved = client.resolve_for_account("acme", ["openai_model"])
    assert (resolved.slots[0].source, resolved.slots[0].model.id) == (pb.SOURCE_GLOBAL, 1)
    assert resolved.etag == f"a{reply.revision}"


def test_reverting_a_global_set_model_restores_the_previous_global(client):
    written = client.set_global_model("openai_model", 2)
    reply = client.revert_change(written.revision)
    change = assert_revert_recorded(client, reply, written.revision, written.revision)
    assert (change.scope, change.before.model_id, change.after.model_id) == (
        pb.SCOPE_GLOBAL, 2, 1)
    assert global_id(client, "openai_model") == 1
    assert client.get_global_settings().etag == f"g{reply.revision}"


def test_reverting_a_clear_global_model_restores_the_setting(client):
    cleared = client.clear_global_model("runware_model")
    reply = client.revert_change(cleared.revision)
    assert_revert_recorded(client, reply, cleared.revision, cleared.revision)
    assert global_id(client, "runware_model") == 6
    got = client.resolve_for_account("acme", ["runware_model"]).slots[0]
    assert got.source == pb.SOURCE_GLOBAL


def test_a_global_write_to_another_slot_does_not_block_the_revert(client):
    written = client.set_global_model("openai_model", 2)
    client.clear_global_model("dalle_model")
    client.set_model("openai_model", 3, account_id="acme")
    client.revert_change(written.revision)
    assert global_id(client, "openai_model") == 1


# -- models ------------------------------------------------------------------------------------


def test_reverting_a_model_update_restores_the_changed_fields(client):
    client.update_model(
        pb.Model(id=2, display_name="GPT-3.5", input_price_per_1m_tokens="0.55"),
        ["display_name", "input_price_per_1m_tokens"],
    )
    updated = current_revision(client)
    reply = client.revert_change(updated)
    change = assert_revert_recorded(client, reply, updated, updated)
    assert change.kind == pb.CHANGE_KIND_MODEL_UPDATED
    assert sorted(change.changed_fields.paths) == ["display_name", "input_price_per_1m_tokens"]
    model = client.get_model(2).model
    assert (model.display_name, model.input_price_per_1m_tokens) == ("GPT-3.5 Turbo", "0.50")
    assert model.output_price_per_1m_tokens == "1.50"


def test_reverting_a_deactivation_reactivates(client):
    client.set_model("openai_model", 3, account_id="acme")
    client.update_model(pb.Model(id=3, is_active=False), ["is_active"])
    deactivated = current_revision(client)
    assert client.resolve_for_account("acme", ["openai_model"]).slots[0].source == (
        pb.SOURCE_GLOBAL)
    client.revert_change(deactivated)
    assert client.get_model(3).model.is_active
    assert client.resolve_for_account("acme", ["openai_model"]).slots[0].source == (
        pb.SOURCE_ACCOUNT)


def test_reverting_a_create_model_deletes_it(client):
    created = client.create_model(text_model("o3")).model
    revision = current_revision(client)
    reply = client.revert_change(revision)
    change = assert_revert_recorded(client, reply, revision, revision)
    assert (change.kind, change.model_id) == (pb.CHANGE_KIND_MODEL_DELETED, created.id)
    with pytest.raises(NotFound):
        client.get_model(created.id)


def test_reverting_a_create_model_that_is_now_in_use_is_model_in_use(client):
    created = client.create_model(text_model("o3")).model
    revision = current_revision(client)
    client.set_model("openai_model", created.id, account_id="acme")  # not a model change
    with pytest.raises(FailedPrecondition) as err:
        client.revert_change(revision)
    assert err.value.reason == "MODEL_IN_USE"
    assert [v.type for v in err.value.violations] == ["ACCOUNT_OVERRIDE"]
    assert client.get_model(created.id).model.model_name == "o3"
    assert override(client, "acme") == created.id


def test_reverting_a_delete_model_brings_it_back_with_its_id_and_fields(client):
    created = client.create_model(text_model(
        "o3", display_name="OpenAI o3", input_price_per_1m_tokens="2.50",
        output_price_per_1m_tokens="10.00", context_window=128000, max_output_tokens=16384,
        aliases=["gpt-4o-latest", "4o"],
    )).model
    deleted = client.delete_model(created.id).revision
    reply = client.revert_change(deleted)
    change = assert_revert_recorded(client, reply, deleted, deleted)
    assert (change.kind, change.model_id) == (pb.CHANGE_KIND_MODEL_CREATED, created.id)
    assert client.get_model(created.id).model == created
    assert client.get_model("4o").model.id == created.id
    newer = client.create_model(text_model("o4-mini")).model
    assert newer.id == created.id + 1  # ids are never reused


def test_reverting_a_delete_model_whose_name_was_taken_again_is_already_exists(client):
    created = client.create_model(text_model("o3")).model
    deleted = client.delete_model(created.id).revision
    replacement = client.create_model(text_model("o3", display_name="the new one")).model
    before = current_revision(client)
    with pytest.raises(AlreadyExists) as err:
        client.revert_change(deleted)
    assert err.value.reason == "MODEL_NAME_TAKEN"
    assert err.value.metadata["model_id"] == str(replacement.id)
    assert current_revision(client) == before
    with pytest.raises(NotFound):
        client.get_model(created.id)


def test_reverting_a_rename_of_a_model_now_in_use_is_model_in_use(client):
    created = client.create_model(text_model("o3")).model
    client.update_model(pb.Model(id=created.id, model_name="o3-2025-04-16"), ["model_name"])
    renamed = current_revision(client)
    client.set_model("openai_model", created.id, account_id="acme")
    with pytest.raises(FailedPrecondition) as err:
        client.revert_change(renamed)
    assert err.value.reason == "MODEL_IN_USE"
    assert client.get_model(created.id).model.model_name == "o3-2025-04-16"


def test_a_later_update_of_the_model_is_changed_since(client):
    client.update_model(pb.Model(id=2, display_name="A"), ["display_name"])
    first = current_revision(client)
    client.update_model(pb.Model(id=2, input_price_per_1m_tokens="0.4"),
                        ["input_price_per_1m_tokens"])
    second = current_revision(client)
    with pytest.raises(FailedPrecondition) as err:
        client.revert_change(first)
    assert err.value.reason == "CHANGED_SINCE"
    assert err.value.metadata["later_revision"] == str(second)


# -- slots -------------------------------------------------------------------------------------


def test_reverting_a_slot_update_restores_the_default(client):
    updated = client.update_slot(pb.Slot(name="openai_model", default_model_id=2),
                                 ["default_model_id"])
    reply = client.revert_change(updated.revision)
    change = assert_revert_recorded(client, reply, updated.revision, updated.revision)
    assert (change.kind, change.slot) == (pb.CHANGE_KIND_SLOT_UPDATED, "openai_model")
    assert (change.before.slot.default_model_id, change.after.slot.default_model_id) == (2, 1)
    slot = next(s for s in client.list_slots().slots if s.name == "openai_model")
    assert (slot.default_model_id, slot.default_model.model_name) == (1, "gpt-4o-mini")


@pytest.mark.parametrize("revision", ["seed", "create_slot"])
def test_the_seed_and_slot_creations_are_not_revertible(client, revision):
    created = client.create_slot(pb.Slot(
        name="openai_backup", required_provider="openai", required_model_type=pb.MODEL_TYPE_TEXT,
        default_model_id=2,
    ))
    target = 1 if revision == "seed" else created.revision
    with pytest.raises(FailedPrecondition) as err:
        client.revert_change(target)
    assert err.value.reason == "NOT_REVERTIBLE"
    assert err.value.metadata["revision"] == str(target)
    assert current_revision(client) == created.revision
    assert len(client.list_slots().slots) == 5


# -- changed since, force, rules ---------------------------------------------------------------


def test_a_later_set_model_of_the_same_override_is_changed_since(client):
    first = client.set_model("openai_model", 2, account_id="acme")
    second = client.set_model("openai_model", 3, account_id="acme")
    with pytest.raises(FailedPrecondition) as err:
        client.revert_change(first.revision)
    assert err.value.reason == "CHANGED_SINCE"
    assert err.value.metadata["later_revision"] == str(second.revision)
    assert [v.type for v in err.value.violations] == ["CHANGED_SINCE"]
    assert current_revision(client) == second.revision
    assert newest(client).revision == second.revision
    assert override(client, "acme") == 3


def test_force_restores_the_first_writes_before(client):
    client.set_model("openai_model", 2, account_id="acme")
    first = client.set_model("openai_model", 3, account_id="acme")  # 2 -> 3
    second = client.set_model("openai_model", 1, account_id="acme")  # 3 -> 1
    reply = client.revert_change(first.revision, force=True)
    change = assert_revert_recorded(client, reply, first.revision, second.revision)
    assert (change.before.model_id, change.after.model_id) == (1, 2)
    assert override(client, "acme") == 2


def test_writes_to_other_accounts_or_slots_do_not_block_a_revert(client):
    first = client.set_model("openai_model", 2, account_id="acme")
    client.set_model("openai_model", 3, account_id="globex")
    client.set_model("dalle_model", 7, account_id="acme")
    client.set_global_model("openai_model", 3)
    client.revert_change(first.revision)
    assert override(client, "acme") is None
    assert override(client, "acme", "dalle_model") == 7


def test_a_later_import_of_the_same_override_is_changed_since(client):
    first = client.set_model("openai_model", 2, account_id="acme")
    imported = client.import_overrides([record(2, "acme", "openai_model", 3)])
    with pytest.raises(FailedPrecondition) as err:
        client.revert_change(first.revision)
    assert err.value.reason == "CHANGED_SINCE"
    assert err.value.metadata["later_revision"] == str(imported.revision)


def test_a_later_global_write_to_the_slot_is_changed_since(client):
    first = client.set_global_model("openai_model", 2)
    cleared = client.clear_global_model("openai_model")
    with pytest.raises(FailedPrecondition) as err:
        client.revert_change(first.revision)
    assert err.value.reason == "CHANGED_SINCE"
    assert err.value.metadata["later_revision"] == str(cleared.revision)
    assert global_id(client, "openai_model") is None


def test_two_concurrent_reverts_of_one_change_apply_once(client):
    written = client.set_model("openai_model", 2, account_id="acme")
    outcomes: list[object] = []
    start = threading.Barrier(2)

    def revert() -> None:
        start.wait(timeout=10)
        try:
            outcomes.append(client.revert_change(written.revision, timeout=30))
        except Exception as exc:  # sorted out below
            outcomes.append(exc)

    threads = [threading.Thread(target=revert) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    applied = [o for o in outcomes if isinstance(o, api.RevertChangeResponse)]
    refused = [o for o in outcomes if isinstance(o, FailedPrecondition)]
    assert (len(applied), len(refused)) == (1, 1), outcomes
    assert refused[0].reason == "CHANGED_SINCE"
    assert refused[0].metadata["later_revision"] == str(applied[0].revision)
    assert current_revision(client) == written.revision + 1
    assert override(client, "acme") is None


def test_reverting_a_clear_account_model_restores_the_override(client):
    client.set_model("dalle_model", 7, account_id="acme")
    cleared = client.clear_account_model("acme", "dalle_model")
    reply = client.revert_change(cleared.revision)
    change = assert_revert_recorded(client, reply, cleared.revision, cleared.revision)
    assert (change.before.model_id, change.after.model_id) == (0, 7)
    assert override(client, "acme", "dalle_model") == 7


def test_reverting_to_a_model_that_is_now_inactive_is_model_inactive(client):
    client.set_model("openai_model", 3, account_id="acme")
    moved = client.set_model("openai_model", 2, account_id="acme")
    client.update_model(pb.Model(id=3, is_active=False), ["is_active"])
    before = current_revision(client)
    with pytest.raises(FailedPrecondition) as err:
        client.revert_change(moved.revision)
    assert err.value.reason == "MODEL_INACTIVE"
    assert "gpt-4-turbo-2024-04-09" in err.value.message
    assert err.value.metadata["model_id"] == "3"
    assert current_revision(client) == before
    assert override(client, "acme") == 2


def test_reverting_to_a_model_deleted_since_is_not_found(client):
    created = client.create_model(text_model("o3")).model
    client.set_model("openai_model", created.id, account_id="acme")
    moved = client.set_model("openai_model", 2, account_id="acme")
    client.delete_model(created.id)
    with pytest.raises(NotFound) as err:
        client.revert_change(moved.revision)
    assert err.value.reason == "MODEL_NOT_FOUND"
    assert override(client, "acme") == 2


def test_a_forced_revert_that_finds_nothing_to_restore_records_nothing(client):
    first = client.set_model("openai_model", 2, account_id="acme")  # none -> 2
    cleared = client.clear_account_model("acme", "openai_model")  # 2 -> none
    reply = client.revert_change(first.revision, force=True)
    assert not reply.HasField("change")
    assert reply.revision == cleared.revision == current_revision(client)
    assert newest(client).revision == cleared.revision


def test_validate_only_shows_the_change_and_changes_nothing(client):
    client.set_model("openai_model", 2, account_id="acme")
    second = client.set_model("openai_model", 3, account_id="acme")
    reply = client.revert_change(second.revision, validate_only=True)
    assert reply.revision == second.revision == current_revision(client)
    change = reply.change
    assert (change.revision, change.reverted_revision, change.kind) == (
        0, second.revision, pb.CHANGE_KIND_SETTING)
    assert (change.account_id, change.before.model_id, change.after.model_id) == ("acme", 3, 2)
    assert newest(client).revision == second.revision
    assert override(client, "acme") == 3
    assert client.resolve_for_account("acme").etag == second.etag


def test_validate_only_still_checks_the_rules(client):
    first = client.set_model("openai_model", 2, account_id="acme")
    client.set_model("openai_model", 3, account_id="acme")
    with pytest.raises(FailedPrecondition) as err:
        client.revert_change(first.revision, validate_only=True)
    assert err.value.reason == "CHANGED_SINCE"


def test_an_unknown_revision_is_not_found(client):
    with pytest.raises(NotFound) as err:
        client.revert_change(999)
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    assert err.value.reason == "CHANGE_NOT_FOUND"
    assert err.value.metadata["revision"] == "999"


@pytest.mark.parametrize("revision", [0, -4])
def test_a_revision_that_is_not_positive_is_invalid(client, revision):
    with pytest.raises(InvalidArgument) as err:
        client.revert_change(revision)
    assert err.value.reason == "INVALID_REVISION"
    assert [v.field for v in err.value.field_violations] == ["revision"]


def test_reverting_a_revert_restores_the_reverted_changes_result(client):
    written = client.set_model("openai_model", 2, account_id="acme")
    undone = client.revert_change(written.revision)
    assert override(client, "acme") is None
    redone = client.revert_change(undone.revision)
    assert override(client, "acme") == 2
    assert redone.change.reverted_revision == undone.revision
    assert (redone.change.before.model_id, redone.change.after.model_id) == (0, 2)
    assert redone.revision == written.revision + 2


def test_a_revert_records_its_reason_and_request_id(client):
    written = client.set_global_model("openai_model", 2)
    client.revert_change(written.revision, reason="rollback: latency", request_id="rb-1")
    change = newest(client)
    assert (change.reason, change.request_id, change.reverted_revision) == (
        "rollback: latency", "rb-1", written.revision)


# -- imports -----------------------------------------------------------------------------------

ACCOUNTS = [f"acct-{i:03d}" for i in range(300)]


@pytest.fixture
def big_import(client) -> dict[str, int]:
    """50 accounts with an openai override (model 3) and 5 with a dalle one, then an import of
    300 openai rows (model 2); the revisions by name."""
    steps = {}
    steps["earlier"] = client.import_overrides(
        [record(i + 2, a, "openai_model", 3) for i, a in enumerate(ACCOUNTS[:50])]).revision
    for account in ACCOUNTS[:5]:
        client.set_model("dalle_model", 7, account_id=account)
    steps["before"] = current_revision(client)
    reply = client.import_overrides(
        [record(i + 2, a, "openai_model", 2) for i, a in enumerate(ACCOUNTS)], chunk_size=70)
    assert (reply.rows, reply.changed_rows, reply.revision) == (300, 300, steps["before"] + 1)
    steps["import"] = reply.revision
    return steps


def test_reverting_an_import_restores_every_accounts_previous_overrides(client, big_import):
    reply = client.revert_change(big_import["import"])
    change = assert_revert_recorded(client, reply, big_import["import"], big_import["import"])
    assert (change.kind, change.import_rows, change.import_accounts) == (
        pb.CHANGE_KIND_IMPORT, 300, 300)
    results = client.resolve_for_accounts(ACCOUNTS, ["openai_model", "dalle_model"]).results
    for i, result in enumerate(results):
        openai, dalle = result.slots
        if i < 50:
            assert (openai.source, openai.model.id) == (pb.SOURCE_ACCOUNT, 3), result
        else:
            assert (openai.source, openai.model.id) == (pb.SOURCE_GLOBAL, 1), result
        assert (dalle.source == pb.SOURCE_ACCOUNT) == (i < 5), result
        assert result.etag == f"a{reply.revision}", result  # moved, also for those without any
    usage = client.get_model_usage(2)
    assert usage.account_override_count == 0
    assert client.get_model_usage(3).account_override_count == 50


def test_reverting_the_revert_of_an_import_applies_it_again(client, big_import):
    undone = client.revert_change(big_import["import"])
    client.revert_change(undone.revision)
    assert client.get_model_usage(2).account_override_count == 300
    assert client.get_model_usage(3).account_override_count == 0


def test_a_later_write_to_an_imported_override_makes_the_revert_changed_since(client,
                                                                           big_import):
    later = client.set_model("openai_model", 1, account_id=ACCOUNTS[123])
    client.set_model("openai_model", 1, account_id="outsider")  # not imported: irrelevant
    client.set_model("dalle_model", 7, account_id=ACCOUNTS[200])  # another slot: irrelevant
    before = current_revision(client)
    with pytest.raises(FailedPrecondition) as err:
        client.revert_change(big_import["import"])
    assert err.value.reason == "CHANGED_SINCE"
    assert err.value.metadata["later_revision"] == str(later.revision)
    assert current_revision(client) == before
    assert client.get_model_usage(2).account_override_count == 299

    reply = client.revert_change(big_import["import"], force=True)
    assert reply.revision == before + 1
    assert override(client, ACCOUNTS[123]) is None  # the later write is lost, as forced
    assert override(client, ACCOUNTS[7]) == 3
    assert client.get_model_usage(2).account_override_count == 0
    assert override(client, "outsider") == 1


def test_reverting_an_import_to_a_model_now_inactive_is_model_inactive(client, big_import):
    client.update_model(pb.Model(id=3, is_active=False), ["is_active"])
    before = current_revision(client)
    with pytest.raises(FailedPrecondition) as err:
        client.revert_change(big_import["import"])
    assert err.value.reason == "MODEL_INACTIVE"
    assert "gpt-4-turbo-2024-04-09" in err.value.message
    assert current_revision(client) == before
    assert client.get_model_usage(2).account_override_count == 300


def test_reverting_an_import_restores_only_the_rows_it_changed(client):
    kept = client.import_overrides(
        [record(i + 2, f"acct-{i}", "openai_model", 2) for i in range(10)])
    half = client.import_overrides(
        [record(i + 2, f"acct-{i}", "openai_model", 2 if i % 2 else 3) for i in range(10)])
    assert half.changed_rows == 5
    client.set_model("openai_model", 1, account_id="acct-1")  # a row the import did not change
    reply = client.revert_change(half.revision)
    assert reply.change.import_rows == 5
    results = client.resolve_for_accounts([f"acct-{i}" for i in range(10)]).results
    for i, result in enumerate(results):
        openai = result.slots[0]
        if i == 1:
            assert openai.model.id == 1
        elif i % 2:
            assert (openai.model.id, result.etag) == (2, f"a{kept.revision}"), result
        else:
            assert (openai.model.id, result.etag) == (2, f"a{reply.revision}"), result


def test_validate_only_revert_of_an_import_changes_nothing(client, big_import):
    reply = client.revert_change(big_import["import"], validate_only=True)
    assert reply.revision == big_import["import"] == current_revision(client)
    assert (reply.change.revision, reply.change.import_rows) == (0, 300)
    assert client.get_model_usage(2).account_override_count == 300
    assert client.resolve_for_account(ACCOUNTS[0]).etag == f"a{big_import['import']}"


# -- the command line --------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def ctl(daemon, capsys):
    def run(*args: str) -> Run:
        code = main(["--target", daemon.address, *args])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def test_ctl_changes_revert_prints_what_it_recorded(ctl, client):
    client.set_model("openai_model", 2, account_id="acme")
    second = client.set_model("openai_model", 3, account_id="acme")
    run = ctl("changes", "revert", str(second.revision))
    assert (run.code, run.err) == (0, "")
    assert run.out == (
        f"recorded: setting acme openai_model: model 3 -> model 2 (reverts {second.revision})\n"
        f"revision: {second.revision + 1}\n")
    assert override(client, "acme") == 2


def test_ctl_changes_revert_reports_changed_since(ctl, client):
    first = client.set_model("openai_model", 2, account_id="acme")
    client.set_model("openai_model", 3, account_id="acme")
    run = ctl("changes", "revert", str(first.revision))
    assert (run.code, run.out) == (4, "")
    assert run.err.startswith("error: FAILED_PRECONDITION CHANGED_SINCE: ")
    forced = ctl("changes", "revert", str(first.revision), "--force")
    assert forced.code == 0 and forced.out.startswith("recorded: setting acme openai_model: ")
