"""ExportConfiguration and ApplyConfiguration over a real port: a whole configuration read at
one revision, and made to match in one change, checked as a whole."""

from __future__ import annotations

import grpc
import pytest

from modelconfig import (
    FailedPrecondition,
    InvalidArgument,
    ModelConfigClient,
    ModelConfigError,
    NotFound,
)
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb

GLOBAL = pb.SCOPE_GLOBAL


def export(client) -> tuple[api.Configuration, list[tuple[str, str, int]], int]:
    """The configuration, the overrides and the revision of one export."""
    responses = list(client.export_configuration())
    first = responses[0]
    overrides = [(r.account_id, r.slot, r.model_id) for p in responses for r in p.overrides]
    assert len(overrides) == first.override_count
    assert {p.revision for p in responses} == {first.revision}
    return first.configuration, overrides, first.revision


def records(overrides) -> list[api.OverrideRecord]:
    return [api.OverrideRecord(account_id=a, slot=s, model_id=m) for a, s, m in overrides]


def customize(client, new_slot: bool = True) -> None:
    """A configuration unlike the seed's: a new model, a new slot, moved settings, overrides
    (one of them of a model deactivated since), a retirement."""
    o3 = client.create_model(pb.Model(
        model_name="o3", provider="openai", model_type=pb.MODEL_TYPE_TEXT, is_active=True,
        input_price_per_1m_tokens="2", output_price_per_1m_tokens="8", aliases=["o3-2025"])).model
    slot = "openai_model"
    if new_slot:
        slot = "summary_model"
        client.create_slot(pb.Slot(name=slot, required_provider="openai",
                                   required_model_type=pb.MODEL_TYPE_TEXT, default_model_id=o3.id))
    client.set_model("anthropic_model", "claude-haiku-4-5", scope=GLOBAL)
    client.import_overrides(records([
        ("acme", "openai_model", 2), ("acme" if new_slot else "umbrella", slot, o3.id),
        ("globex", "dalle_model", 7), ("initech", "openai_model", 3),
    ]))
    client.update_model(pb.Model(id=3, is_active=False), ["is_active"])  # initech's is skipped
    client.retire_model(5, 16)


def test_export_holds_the_whole_configuration_at_one_revision(client):
    client.import_overrides(records([("b", "openai_model", 2), ("a", "dalle_model", 7),
                                     ("a", "openai_model", 3)]))
    configuration, overrides, revision = export(client)
    assert revision == client.get_global_settings().revision
    assert [m.id for m in configuration.models] == [m.id for m in client.iter_models()]
    assert [s.name for s in configuration.slots] == [
        "openai_model", "dalle_model", "runware_model", "anthropic_model"]
    assert [(g.slot, g.model_id) for g in configuration.global_settings] == [
        ("openai_model", 1), ("dalle_model", 7), ("runware_model", 6)]
    assert overrides == [
        ("a", "openai_model", 3), ("a", "dalle_model", 7), ("b", "openai_model", 2)]


def test_export_apply_into_an_empty_daemon_then_export_gives_the_same(client, daemons, tmp_path):
    customize(client)
    configuration, overrides, _ = export(client)
    empty = daemons.start(f"sqlite:///{tmp_path}/empty.db")
    other = ModelConfigClient(empty.address)
    try:
        reply = other.apply_configuration(configuration, records(overrides))
        assert reply.revision == 2  # the seed's, then this one
        assert reply.slots_created == ["summary_model"]
        assert reply.overrides_changed == len(overrides)
        again, again_overrides, _ = export(other)
        assert again == configuration
        assert again_overrides == overrides
        for account in ("acme", "globex", "initech", "nobody"):
            theirs = other.resolve_for_account(account)
            ours = client.resolve_for_account(account)
            assert list(theirs.slots) == list(ours.slots)
        created = other.create_model(pb.Model(model_name="o4", provider="openai",
                                              model_type=pb.MODEL_TYPE_TEXT)).model
        assert created.id == max(m.id for m in configuration.models) + 1
    finally:
        other.close()


def test_applying_an_export_undoes_later_changes_in_one_revision(client):
    configuration, overrides, _ = export(client)
    customize(client, new_slot=False)
    before = client.get_global_settings().revision
    reply = client.apply_configuration(configuration, records(overrides), reason="roll back")
    assert reply.revision == before + 1 == client.get_global_settings().revision
    assert list(reply.models_deleted) == [max(m.id for m in configuration.models) + 1]  # o3
    assert sorted(reply.models_updated) == [3, 5]  # reactivated, and un-retired
    assert list(reply.global_settings_changed) == ["anthropic_model"]
    assert reply.overrides_changed == 4 and reply.accounts_changed == 4
    assert export(client)[:2] == (configuration, overrides)
    assert overrides == []
    change = client.list_changes(page_size=1).changes[0]
    assert change.kind == pb.CHANGE_KIND_CONFIGURATION_APPLIED
    assert change.reason == "roll back" and change.method == "ApplyConfiguration"
    assert list(change.after.applied.models_updated) == [3, 5]
    assert (change.import_rows, change.import_accounts) == (4, 4)
    with pytest.raises(FailedPrecondition) as refused:
        client.revert_change(change.revision)
    assert refused.value.reason == "NOT_REVERTIBLE"


def test_applying_the_current_configuration_changes_nothing(client):
    client.import_overrides(records([("acme", "openai_model", 2)]))
    configuration, overrides, revision = export(client)
    reply = client.apply_configuration(configuration, records(overrides))
    assert reply.revision == revision == client.get_global_settings().revision
    assert not (reply.models_created or reply.models_updated or reply.slots_updated)
    assert reply.overrides_changed == 0


def test_validate_only_reports_what_would_change_and_changes_nothing(client):
    configuration, _, revision = export(client)
    configuration.global_settings.add(slot="anthropic_model", model_id=16)
    reply = client.apply_configuration(configuration, [], validate_only=True)
    assert list(reply.global_settings_changed) == ["anthropic_model"]
    assert reply.revision == revision == client.get_global_settings().revision
    setting = next(s for s in client.get_global_settings().slots if s.slot == "anthropic_model")
    assert not setting.HasField("model")


def test_without_overrides_the_accounts_keep_theirs(client):
    client.import_overrides(records([("acme", "openai_model", 2)]))
    configuration, _, _ = export(client)
    configuration.models[1].display_name = "GPT-3.5 Turbo (legacy)"
    reply = client.apply_configuration(configuration)
    assert list(reply.models_updated) == [2] and reply.overrides_changed == 0
    assert client.resolve_for_account("acme", ["openai_model"]).slots[0].model.id == 2
    del configuration.models[1]  # gpt-3.5-turbo, which acme's override selects
    with pytest.raises(FailedPrecondition) as refused:
        client.apply_configuration(configuration)
    assert refused.value.reason == "MODEL_IN_USE"


def names_swapped(configuration: api.Configuration) -> api.Configuration:
    first, second = configuration.models[0], configuration.models[1]
    first.model_name, second.model_name = second.model_name, first.model_name
    first.display_name, second.display_name = second.display_name, first.display_name
    return configuration


def test_names_can_move_between_models_in_one_apply(client):
    configuration, overrides, _ = export(client)
    client.apply_configuration(names_swapped(configuration), records(overrides))
    assert client.get_model("gpt-3.5-turbo").model.id == 1
    assert client.get_model("gpt-4o-mini").model.id == 2


def _broken(client, mutate):
    configuration, overrides, _ = export(client)
    rows = records(overrides)
    extra = mutate(configuration, rows)  # a list: other overrides to send
    return configuration, (extra if isinstance(extra, list) else rows)


@pytest.mark.parametrize(
    ("mutate", "error", "reason"),
    [
        (lambda c, r: c.models.append(c.models[0]), InvalidArgument, "DUPLICATE_IN_CONFIGURATION"),
        (lambda c, r: setattr(c.models[1], "model_name", "gpt-4o-mini"), InvalidArgument,
         "DUPLICATE_IN_CONFIGURATION"),
        (lambda c, r: c.slots.append(c.slots[0]), InvalidArgument, "DUPLICATE_IN_CONFIGURATION"),
        (lambda c, r: c.global_settings.add(slot="openai_model", model_id=2), InvalidArgument,
         "DUPLICATE_IN_CONFIGURATION"),
        (lambda c, r: c.global_settings.add(slot="anthropic_model", model_id=999),
         InvalidArgument, "UNKNOWN_MODEL"),
        (lambda c, r: c.global_settings.add(slot="nope", model_id=1), InvalidArgument,
         "UNKNOWN_SLOT"),
        (lambda c, r: setattr(c.models[2], "input_price_per_1m_tokens", "-1"), InvalidArgument,
         "INVALID_MODEL"),
        (lambda c, r: c.slots.pop(), FailedPrecondition, "SLOT_NOT_IN_CONFIGURATION"),
        (lambda c, r: setattr(c.models[0], "is_active", False), FailedPrecondition,
         "MODEL_INACTIVE"),  # openai_model's global setting and default
        (lambda c, r: setattr(c.slots[3], "default_model_id", 1), FailedPrecondition,
         "PROVIDER_MISMATCH"),
        (lambda c, r: setattr(c.models[1], "successor_id", 7), FailedPrecondition,
         "SUCCESSOR_MISMATCH"),
        (lambda c, r: [api.OverrideRecord(account_id="a", slot="openai_model", model_id=7)],
         FailedPrecondition, "MODEL_TYPE_MISMATCH"),
        (lambda c, r: [api.OverrideRecord(account_id="a", slot="openai_model", model_id=999)],
         NotFound, "MODEL_NOT_FOUND"),
        (lambda c, r: [api.OverrideRecord(account_id="a", slot="openai_model", model_id=2)] * 2,
         InvalidArgument, "DUPLICATE_ROW"),
    ],
)
def test_a_configuration_that_breaks_a_rule_changes_nothing(client, mutate, error, reason):
    client.import_overrides(records([("acme", "openai_model", 2)]))
    configuration, rows = _broken(client, mutate)
    before = export(client)
    with pytest.raises(error) as refused:
        client.apply_configuration(configuration, rows)
    assert refused.value.reason == reason
    assert export(client) == before


def test_a_malformed_stream_is_refused(daemon):
    from modelconfig import from_rpc_error

    def call(messages):
        try:
            daemon.stub.ApplyConfiguration(iter(messages))
        except Exception as exc:
            return from_rpc_error(exc)
        raise AssertionError("accepted")

    assert call([]).reason == "NO_CONFIGURATION"
    assert call([api.ApplyConfigurationRequest(overrides=[api.OverrideRecord()])]).reason == (
        "NO_CONFIGURATION")
    configuration = next(iter(ModelConfigClient(daemon.address).export_configuration()))
    sent = api.ApplyConfigurationRequest(configuration=configuration.configuration)
    more = api.ApplyConfigurationRequest(
        overrides=[api.OverrideRecord(account_id="a", slot="openai_model", model_id=1)])
    assert call([sent, more]).reason == "OVERRIDES_NOT_REPLACED"


def test_overrides_left_alone_must_still_fit_what_the_apply_changes(client):
    client.import_overrides(records([("acme", "openai_model", 2)]))
    configuration, _, _ = export(client)
    configuration.models[1].provider = "azure"  # gpt-3.5-turbo, which acme's override selects
    with pytest.raises(FailedPrecondition) as refused:
        client.apply_configuration(configuration)  # overrides left as they are
    assert refused.value.reason == "PROVIDER_MISMATCH"


def test_apply_refuses_when_the_revision_moved_since_it_was_compared(client):
    configuration, overrides, revision = export(client)
    client.set_model("openai_model", 2, account_id="acme")
    with pytest.raises(ModelConfigError) as refused:
        client.apply_configuration(configuration, records(overrides), expected_revision=revision)
    assert (refused.value.code, refused.value.reason) == (grpc.StatusCode.ABORTED, "REVISION_MOVED")
    assert client.get_global_settings().revision == revision + 1


def test_a_later_apply_makes_reverting_an_earlier_change_changed_since(client):
    configuration, overrides, _ = export(client)
    deleted = client.create_model(pb.Model(model_name="o3", provider="openai",
                                           model_type=pb.MODEL_TYPE_TEXT)).model
    client.delete_model(deleted.id)
    deletion = client.list_changes(page_size=1).changes[0].revision
    configuration.models.add(id=deleted.id, model_name="o4", provider="openai",
                             model_type=pb.MODEL_TYPE_TEXT)
    client.apply_configuration(configuration, records(overrides))  # the id, for another model
    with pytest.raises(FailedPrecondition) as refused:
        client.revert_change(deletion)
    assert refused.value.reason == "CHANGED_SINCE"
    assert client.get_model(deleted.id).model.model_name == "o4"
