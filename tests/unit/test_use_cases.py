"""The use cases over an in-memory unit of work: check order, scopes, etags, no-ops, revisions,
the change each write records, slots, and the rules of reverts. No database, no gRPC: the same
behaviours are tested over a real port on SQLite and PostgreSQL in tests/e2e."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modelconfigd.domain import changes, errors
from modelconfigd.domain.access import Role
from modelconfigd.domain.changes import ChangeFilter, ChangeKind, Origin, Scope
from modelconfigd.domain.model import ModelType
from modelconfigd.service_layer.imports import ImportRow
from modelconfigd.service_layer.live_state import LiveState
from modelconfigd.service_layer.services import ModelConfigServices, ModelRef

from .fake_store import FakeStore

OPERATOR = Origin("ipv4:10.0.0.7", "SetModel", "req-1", "cheaper model")
GLOBAL = Scope.GLOBAL


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def services(store) -> ModelConfigServices:
    return ModelConfigServices(store, LiveState(store))


def set_account(services, account: str, slot: str, model: int | str, **kwargs):
    ref = ModelRef(model_id=model) if isinstance(model, int) else ModelRef(model_name=model)
    return services.set_model(slot, ref, account, kwargs.pop("etag", ""), False, **kwargs)


def set_global(services, slot: str, model: int, etag: str = "", validate_only: bool = False):
    return services.set_model(slot, ModelRef(model_id=model), "", etag, validate_only, GLOBAL)


def rows(*triples) -> list[ImportRow]:
    return [
        ImportRow(line, account, slot, ModelRef(model_id=model))
        for line, (account, slot, model) in enumerate(triples, start=2)
    ]


def newest(store: FakeStore):
    return store.data.changes[store.data.revision]


# -- check order, scopes, etags ----------------------------------------------------------------


def test_a_malformed_request_is_refused_before_a_stale_etag_and_a_stale_etag_before_state(
    services, store
):
    with pytest.raises(errors.InvalidArgument):  # malformed id, stale etag, unknown model
        set_account(services, "bad id", "openai_model", 999, etag="a-stale")
    with pytest.raises(errors.EtagMismatch):  # stale etag, unknown model
        set_account(services, "acme", "openai_model", 999, etag="a-stale")
    with pytest.raises(errors.ModelNotFound):
        set_account(services, "acme", "openai_model", 999)
    assert store.commits == 0


@pytest.mark.parametrize(
    ("scope", "account", "reason"),
    [
        (None, "", "SCOPE_REQUIRED"),
        (Scope.GLOBAL, "acme", "SCOPE_CONFLICT"),
        (Scope.ACCOUNT, "", "SCOPE_CONFLICT"),
    ],
)
def test_a_write_without_an_explicit_consistent_scope_is_refused(
    services, store, scope, account, reason
):
    with pytest.raises(errors.InvalidArgument) as err:
        services.set_model("openai_model", ModelRef(model_id=2), account, "", False, scope)
    assert err.value.reason == reason
    assert store.commits == 0


def test_etags_move_with_their_scope_only(services):
    global_before = services.global_settings().etag
    written = set_account(services, "acme", "openai_model", 2)
    assert written.etag == f"a{written.revision}"
    assert services.global_settings().etag == global_before
    assert services.resolve("globex", ()).etag == "a0"
    written = set_global(services, "openai_model", 3, etag=global_before)
    assert written.etag == services.global_settings().etag == f"g{written.revision}"
    with pytest.raises(errors.EtagMismatch):
        set_global(services, "openai_model", 2, etag=global_before)


# -- no-ops, validate-only, one change per write -----------------------------------------------


def test_no_op_and_validate_only_writes_commit_nothing(services, store):
    set_global(services, "openai_model", 1)  # already set
    set_global(services, "openai_model", 2, validate_only=True)
    services.update_model(1, {"display_name": "GPT-4o Mini"})  # unchanged
    services.import_overrides(rows(("acme", "openai_model", 2)), validate_only=True)
    assert store.commits == 0
    assert services.global_settings().slots[0].model.id == 1


def test_every_committed_write_records_one_change_with_its_origin(services, store):
    reply = services.set_model(
        "openai_model", ModelRef(model_name="gpt-3.5-turbo"), "acme", "", False, origin=OPERATOR
    )
    change = newest(store)
    assert (store.commits, change.revision) == (1, reply.revision)
    assert (change.kind, change.scope, change.slot, change.account_id) == (
        ChangeKind.SETTING, Scope.ACCOUNT, "openai_model", "acme")
    assert (change.before, change.after) == ({"model_id": None}, {"model_id": 2})
    assert change.origin == OPERATOR
    assert change.models == {2} and change.slots == {"openai_model"}


def test_a_model_update_records_exactly_the_changed_fields(services, store):
    services.update_model(
        3, {"display_name": "GPT-4 Turbo", "input_price_per_1m_tokens": "9.5"}
    )
    change = newest(store)
    assert change.kind is ChangeKind.MODEL_UPDATED and change.model_id == 3
    assert change.before == {"input_price_per_1m_tokens": "10"}
    assert change.after == {"input_price_per_1m_tokens": "9.5"}


def test_an_import_identical_to_what_is_stored_keeps_the_revision(services, store):
    batch = rows(("a1", "openai_model", 2), ("a2", "dalle_model", 7))
    first = services.import_overrides(batch, validate_only=False)
    assert (first.changed_rows, store.commits) == (2, 1)
    again = services.import_overrides(batch, validate_only=False)
    assert (again.revision, again.changed_rows, store.commits) == (first.revision, 0, 1)
    half = services.import_overrides(
        rows(("a1", "openai_model", 2), ("a2", "dalle_model", 7), ("a3", "openai_model", 3)),
        validate_only=False,
    )
    assert (half.changed_rows, half.revision) == (1, first.revision + 1)
    assert services.resolve("a1", ()).etag == f"a{first.revision}"  # untouched account


def test_writes_read_their_facts_from_the_unit_not_the_snapshot(services, store):
    # Another daemon changed the slot's default; this one's snapshot has not caught up yet.
    with store.write(Origin()) as uow:
        slot = uow.slots.get("openai_model")
        moved = replace(slot, default_model_id=2)
        uow.slots.update(moved)
        uow.commit(changes.slot_updated(slot, moved))
    assert services.state.catalog.slots["openai_model"].default_model_id == 1
    reply = set_account(services, "acme", "openai_model", 3)
    assert reply.setting.default_model.id == 2


# -- slots -------------------------------------------------------------------------------------


def slot_fields(**overrides):
    return {
        "name": "google_model",
        "display_name": "",
        "required_provider": "openai",
        "required_model_type": ModelType.TEXT,
        "default_model_id": 2,
        **overrides,
    }


def test_a_new_slot_is_resolvable_without_code_and_takes_one_revision(services, store):
    set_account(services, "acme", "openai_model", 2)  # a record from before the slot
    slot, revision = services.create_slot(slot_fields())
    assert (slot.display_name, revision) == ("google_model", store.data.revision)
    resolved = {r.slot: (r.model.id, r.source.value) for r in services.resolve("acme", ()).slots}
    assert resolved["google_model"] == (2, "default")
    assert resolved["openai_model"] == (2, "account")


@pytest.mark.parametrize(
    ("fields", "error", "reason"),
    [
        ({"name": "Bad Name"}, errors.InvalidArgument, "INVALID_SLOT"),
        ({"name": "openai_model"}, errors.AlreadyExists, "SLOT_NAME_TAKEN"),
        ({"default_model_id": 99}, errors.ModelNotFound, "MODEL_NOT_FOUND"),
        ({"default_model_id": 7}, errors.ModelTypeMismatch, "MODEL_TYPE_MISMATCH"),
        ({"default_model_id": 5}, errors.ProviderMismatch, "PROVIDER_MISMATCH"),
    ],
)
def test_a_slot_must_be_well_formed_new_and_default_to_a_fitting_model(
    services, store, fields, error, reason
):
    with pytest.raises(error) as err:
        services.create_slot(slot_fields(**fields))
    assert err.value.reason == reason
    assert store.commits == 0


def test_a_used_slot_keeps_its_provider_and_type_but_may_change_default(services, store):
    with pytest.raises(errors.SlotInUse):
        services.update_slot("openai_model", {"required_provider": "anthropic",
                                              "default_model_id": 5})
    slot, _ = services.update_slot("openai_model", {"default_model_id": 2})
    assert slot.default_model_id == 2
    set_global(services, "openai_model", 2)
    services.update_model(1, {"is_active": False})  # no longer a default or a global setting
    assert not services.state.catalog.models[1].is_active


# -- reverts -----------------------------------------------------------------------------------


def test_revert_restores_what_a_setting_replaced_as_a_new_change(services, store):
    first = set_account(services, "acme", "openai_model", 2)
    result = services.revert_change(first.revision, force=False, validate_only=False)
    assert result.change.reverted_revision == first.revision
    assert result.revision == first.revision + 1
    assert (result.change.before, result.change.after) == ({"model_id": 2}, {"model_id": None})
    assert services.resolve("acme", ("openai_model",)).slots[0].source.value == "global"


def test_revert_refuses_to_undo_a_later_change_unless_forced(services, store):
    first = set_account(services, "acme", "openai_model", 2)
    second = set_account(services, "acme", "openai_model", 3)
    with pytest.raises(errors.ChangedSince) as err:
        services.revert_change(first.revision, force=False, validate_only=False)
    assert err.value.metadata["later_revision"] == str(second.revision)
    assert store.data.revision == second.revision
    services.revert_change(first.revision, force=True, validate_only=False)
    assert store.data.overrides.get(("acme", "openai_model")) is None


def test_revert_follows_the_rules_of_the_original_write(services, store):
    first = set_global(services, "openai_model", 2)
    set_account(services, "other", "openai_model", 3)
    services.update_model(1, {"is_active": True})  # no-op: still active
    services.update_slot("openai_model", {"default_model_id": 3})
    services.update_model(1, {"is_active": False})
    with pytest.raises(errors.ModelInactive) as err:  # the model to restore is inactive now
        services.revert_change(first.revision, force=False, validate_only=False)
    assert err.value.metadata["model_id"] == "1"


def test_the_seed_and_slot_creations_are_not_revertible(services):
    _, created = services.create_slot(slot_fields())
    for target in (1, created):
        with pytest.raises(errors.NotRevertible):
            services.revert_change(target, force=True, validate_only=False)


def test_reverting_catalog_changes_restores_the_model(services, store):
    updated = services.update_model(3, {"output_price_per_1m_tokens": "25"})[1]
    services.revert_change(updated, force=False, validate_only=False)
    assert str(store.data.models[3].output_price_per_1m_tokens) == "30"
    model, created = services.create_model({
        "model_name": "o4-mini", "display_name": "", "provider": "openai",
        "model_type": ModelType.TEXT, "is_active": True, "input_price_per_1m_tokens": "2",
        "output_price_per_1m_tokens": "8", "price_per_image": "", "context_window": 0,
        "max_output_tokens": 0, "aliases": ["o4-mini-latest"],
        "cached_input_price_per_1m_tokens": "0.5",
    })
    deleted = services.delete_model(model.id)
    services.revert_change(deleted, force=False, validate_only=False)
    assert store.data.models[model.id] == model  # the same id and fields
    with pytest.raises(errors.ChangedSince):  # deleted and restored since
        services.revert_change(created, force=False, validate_only=False)
    services.revert_change(created, force=True, validate_only=False)
    assert model.id not in store.data.models


def test_reverting_an_import_restores_every_previous_override(services, store):
    set_account(services, "a1", "openai_model", 3)
    imported = services.import_overrides(
        rows(("a1", "openai_model", 2), ("a2", "openai_model", 2), ("a2", "dalle_model", 7)),
        validate_only=False,
    )
    before = dict(store.data.overrides)
    result = services.revert_change(imported.revision, force=False, validate_only=True)
    assert result.change.kind is ChangeKind.IMPORT and result.change.revision == 0
    assert store.data.overrides == before  # validate-only changed nothing
    services.revert_change(imported.revision, force=False, validate_only=False)
    assert store.data.overrides == {("a1", "openai_model"): 3}
    change = newest(store)
    assert (change.reverted_revision, change.after) == (imported.revision, {
        "rows": 3, "accounts": 2})
    listed = services.list_changes(ChangeFilter(account_id="a2"), 0, "").changes
    assert [c.revision for c in listed] == [change.revision, imported.revision]


def test_an_unknown_or_malformed_revision(services):
    with pytest.raises(errors.ChangeNotFound):
        services.revert_change(99, force=False, validate_only=False)
    with pytest.raises(errors.InvalidArgument):
        services.revert_change(0, force=False, validate_only=False)


def test_a_global_setting_needs_the_admin_role_an_override_does_not(services, store):
    writer = Origin("checkout", "SetModel", "r", "", Role.WRITER)
    with pytest.raises(errors.PermissionDenied) as err:
        services.set_model("openai_model", ModelRef(model_id=2), "", "", True, GLOBAL, writer)
    assert err.value.metadata == {"role": "writer", "required_role": "admin"}
    set_account(services, "acme", "openai_model", 2, origin=writer)
    assert store.commits == 1 and newest(store).origin.actor == "checkout"


def test_a_new_day_republishes_the_snapshot_so_deprecations_start(services, store):
    """The hot path caches answers per State; past midnight (UTC) the next catch-up publishes
    the same revision as of the new day, so a deprecation date just reached shows."""
    from datetime import timedelta

    from modelconfigd.domain.state import utc_today

    live = services._live
    services.update_model(1, {"deprecation_date": utc_today().isoformat()})
    yesterday = live.current.on(utc_today() - timedelta(days=1))
    live._state = yesterday  # as if published just before midnight
    assert yesterday.view("acme", ("openai_model",)).slots[0].deprecated is False
    today = live.catch_up()
    assert today is not yesterday and today.revision == yesterday.revision
    assert today.today == utc_today()
    assert today.view("acme", ("openai_model",)).slots[0].deprecated is True
    assert live.catch_up() is today  # the same day: nothing new
