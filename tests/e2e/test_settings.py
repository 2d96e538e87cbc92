"""GetGlobalSettings, SetModel and ClearAccountModel over a real port, on SQLite and PostgreSQL."""

from __future__ import annotations

import grpc
import pytest

from modelconfig import EtagMismatch, FailedPrecondition, InvalidArgument, NotFound
from modelconfig.v1 import resources_pb2 as pb


def globals_by_slot(client) -> dict[str, str]:
    return {
        s.slot: (s.model.model_name if s.HasField("model") else "")
        for s in client.get_global_settings().slots
    }


def deactivate(client, model_id: int) -> None:
    client.update_model(pb.Model(id=model_id, is_active=False), ["is_active"])


def test_seeded_global_settings_are_the_seed_documents(client):
    settings = client.get_global_settings()
    rows = [
        (
            s.slot,
            s.model.id if s.HasField("model") else None,
            s.required_provider,
            s.required_model_type,
            s.default_model.model_name,
        )
        for s in settings.slots
    ]
    assert rows == [
        ("openai_model", 1, "openai", pb.MODEL_TYPE_TEXT, "gpt-4o-mini"),
        ("dalle_model", 7, "openai", pb.MODEL_TYPE_IMAGE, "dall-e-3"),
        ("runware_model", 6, "runware", pb.MODEL_TYPE_IMAGE, "runware-flux-1.1-pro"),
        ("anthropic_model", None, "anthropic", pb.MODEL_TYPE_TEXT, "claude-3-5-sonnet-20241022"),
    ]
    assert settings.etag and settings.revision >= 1


@pytest.mark.parametrize("ref", [2, "gpt-3.5-turbo"], ids=["by-id", "by-name"])
def test_set_global_model_by_id_or_name(client, ref):
    before = client.get_global_settings()
    reply = client.set_global_model("openai_model", ref)
    assert reply.setting.model.model_name == "gpt-3.5-turbo"
    assert reply.setting.slot == "openai_model"
    assert reply.revision == before.revision + 1
    after = client.get_global_settings()
    assert globals_by_slot(client)["openai_model"] == "gpt-3.5-turbo"
    assert after.etag == reply.etag != before.etag


def test_set_model_by_alias(client):
    reply = client.set_model("runware_model", "runware:97@1", account_id="acme")
    assert reply.setting.model.id == 6


def test_set_anthropic_slot_that_had_no_global(client):
    client.set_global_model("anthropic_model", "claude-3-haiku-20240307")
    assert globals_by_slot(client)["anthropic_model"] == "claude-3-haiku-20240307"


SCOPES = pytest.mark.parametrize(
    "scope",
    [{"scope": pb.SCOPE_GLOBAL}, {"account_id": "acme"}],
    ids=["global", "account"],
)


@SCOPES
def test_wrong_provider_is_refused_naming_both_providers(client, scope):
    with pytest.raises(FailedPrecondition) as err:
        client.set_model("openai_model", "claude-3-haiku-20240307", **scope)
    assert err.value.reason == "PROVIDER_MISMATCH"
    assert "'anthropic'" in err.value.message and "'openai'" in err.value.message
    assert err.value.metadata["model_provider"] == "anthropic"
    assert err.value.metadata["required_provider"] == "openai"
    assert err.value.violations[0].type == "PROVIDER"
    assert globals_by_slot(client)["openai_model"] == "gpt-4o-mini"


@SCOPES
def test_wrong_type_is_refused(client, scope):
    with pytest.raises(FailedPrecondition) as err:
        client.set_model("openai_model", "dall-e-3", **scope)
    assert err.value.reason == "MODEL_TYPE_MISMATCH"
    assert "image" in err.value.message and "text" in err.value.message


@SCOPES
def test_inactive_model_is_refused(client, scope):
    deactivate(client, 3)
    with pytest.raises(FailedPrecondition) as err:
        client.set_model("openai_model", 3, **scope)
    assert err.value.reason == "MODEL_INACTIVE"


def test_inactive_model_is_refused_even_where_already_set(client):
    client.set_model("openai_model", 3, account_id="acme")
    deactivate(client, 3)
    revision = client.get_global_settings().revision
    with pytest.raises(FailedPrecondition) as err:
        client.set_model("openai_model", 3, account_id="acme")
    assert err.value.reason == "MODEL_INACTIVE"
    assert client.get_global_settings().revision == revision


@pytest.mark.parametrize("ref", [999, "no-such-model"], ids=["id", "name"])
def test_unknown_model_is_not_found(client, ref):
    with pytest.raises(NotFound) as err:
        client.set_global_model("openai_model", ref)
    assert err.value.reason == "MODEL_NOT_FOUND"


@pytest.mark.parametrize(
    ("kwargs", "reason", "field"),
    [
        ({"slot": "gemini_model", "model": 1}, "UNKNOWN_SLOT", "slot"),
        ({"slot": "openai_model", "model": -4}, "INVALID_MODEL_ID", "model_id"),
        (
            {"slot": "openai_model", "model": "bad name with spaces"},
            "INVALID_MODEL_NAME",
            "model_name",
        ),
        (
            {"slot": "openai_model", "model": 1, "account_id": "white space"},
            "INVALID_ACCOUNT_ID",
            "account_id",
        ),
    ],
)
def test_malformed_set_model_is_invalid_argument(client, kwargs, reason, field):
    kwargs = dict(kwargs)
    slot, model = kwargs.pop("slot"), kwargs.pop("model")
    scope = pb.SCOPE_UNSPECIFIED if "account_id" in kwargs else pb.SCOPE_GLOBAL
    with pytest.raises(InvalidArgument) as err:
        client.set_model(slot, model, scope=scope, **kwargs)
    assert err.value.reason == reason
    assert [v.field for v in err.value.field_violations] == [field]


def test_set_model_without_model_ref_is_invalid(daemon):
    from modelconfig.v1 import model_config_service_pb2 as api

    with pytest.raises(grpc.RpcError) as err:
        daemon.stub.SetModel(api.SetModelRequest(slot="openai_model"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_validate_only_checks_everything_and_changes_nothing(client):
    before = client.get_global_settings()
    reply = client.set_global_model("openai_model", "gpt-3.5-turbo", validate_only=True)
    assert reply.setting.model.model_name == "gpt-3.5-turbo"
    assert (reply.revision, reply.etag) == (before.revision, before.etag)
    assert globals_by_slot(client)["openai_model"] == "gpt-4o-mini"
    with pytest.raises(FailedPrecondition):
        client.set_global_model("openai_model", "dall-e-3", validate_only=True)
    with pytest.raises(EtagMismatch):
        client.set_global_model("openai_model", 2, validate_only=True, etag="g-stale")


def test_setting_what_is_set_changes_nothing(client):
    before = client.get_global_settings()
    reply = client.set_global_model("openai_model", "gpt-4o-mini")
    assert (reply.revision, reply.etag) == (before.revision, before.etag)
    account = client.set_model("openai_model", 2, account_id="acme")
    again = client.set_model("openai_model", 2, account_id="acme")
    assert (again.revision, again.etag) == (account.revision, account.etag)


def test_stale_global_etag_is_aborted_and_changes_nothing(client):
    etag = client.get_global_settings().etag
    client.set_global_model("openai_model", 2, etag=etag)
    with pytest.raises(EtagMismatch) as err:
        client.set_global_model("openai_model", 3, etag=etag)
    assert err.value.code == grpc.StatusCode.ABORTED
    assert err.value.reason == "ETAG_MISMATCH"
    assert globals_by_slot(client)["openai_model"] == "gpt-3.5-turbo"


def test_fresh_etag_is_accepted_and_none_is_unchecked(client):
    fresh = client.get_global_settings().etag
    reply = client.set_global_model("openai_model", 2, etag=fresh)
    client.set_global_model("openai_model", 3)  # no etag: not checked
    assert reply.etag != fresh


def test_account_etag_guards_account_writes(client):
    etag = client.resolve_for_account("acme").etag
    assert etag  # never empty, even without overrides
    client.set_model("openai_model", 2, account_id="acme", etag=etag)
    with pytest.raises(EtagMismatch):
        client.set_model("openai_model", 3, account_id="acme", etag=etag)
    with pytest.raises(EtagMismatch):
        client.clear_account_model("acme", "openai_model", etag=etag)


def test_global_writes_do_not_stale_account_etags(client):
    etag = client.resolve_for_account("acme").etag
    client.set_global_model("openai_model", 2)
    client.set_model("openai_model", 3, account_id="acme", etag=etag)


def test_check_order_invalid_before_aborted_before_state(client):
    client.set_global_model("openai_model", 2)  # makes the seeded etag stale
    stale = "g1"
    with pytest.raises(InvalidArgument):
        client.set_global_model("no_such_slot", 1, etag=stale)
    with pytest.raises(EtagMismatch):
        client.set_global_model("openai_model", 999, etag=stale)
    with pytest.raises(EtagMismatch):
        client.set_global_model("openai_model", "claude-3-haiku-20240307", etag=stale)


def test_clear_account_model_falls_back_to_global(client):
    client.set_model("openai_model", 2, account_id="acme")
    reply = client.clear_account_model("acme", "openai_model")
    resolved = client.resolve_for_account("acme", ["openai_model"])
    assert resolved.slots[0].model.id == 1
    assert resolved.slots[0].source == pb.SOURCE_GLOBAL
    assert reply.etag == resolved.etag and reply.revision == resolved.revision


def test_clearing_a_missing_override_is_not_found(client):
    revision = client.get_global_settings().revision
    with pytest.raises(NotFound) as err:
        client.clear_account_model("acme", "openai_model")
    assert err.value.reason == "OVERRIDE_NOT_FOUND"
    assert client.get_global_settings().revision == revision


@pytest.mark.parametrize(
    ("account", "slot", "reason"),
    [("", "openai_model", "ACCOUNT_ID_REQUIRED"), ("acme", "nope", "UNKNOWN_SLOT")],
)
def test_malformed_clear_is_invalid_argument(client, account, slot, reason):
    with pytest.raises(InvalidArgument) as err:
        client.clear_account_model(account, slot)
    assert err.value.reason == reason


def test_every_change_bumps_revision_once_and_refusals_do_not(client):
    r0 = client.get_global_settings().revision
    client.set_global_model("openai_model", 2)
    client.set_model("openai_model", 3, account_id="acme")
    created = client.create_model(
        pb.Model(
            model_name="o3", provider="openai", model_type=pb.MODEL_TYPE_TEXT, is_active=True
        )
    ).model
    client.clear_account_model("acme", "openai_model")
    client.delete_model(created.id)
    assert client.get_global_settings().revision == r0 + 5
    refusals = [
        (lambda: client.set_global_model("openai_model", "dall-e-3"), FailedPrecondition),
        (lambda: client.set_global_model("openai_model", 999), NotFound),
        (lambda: client.clear_account_model("acme", "openai_model"), NotFound),
        (lambda: client.delete_model(1).revision, FailedPrecondition),
        (lambda: client.set_global_model("openai_model", 2, etag="g0"), EtagMismatch),
    ]
    for refused, error in refusals:
        with pytest.raises(error):
            refused()
    assert client.get_global_settings().revision == r0 + 5


def test_no_op_write_with_stale_etag_is_aborted(client):
    client.set_global_model("openai_model", 2)
    with pytest.raises(EtagMismatch):
        client.set_global_model("openai_model", 2, etag="g1")


def test_clear_checks_the_etag_before_the_override(client):
    etag = client.resolve_for_account("acme").etag
    client.set_model("openai_model", 2, account_id="acme")
    client.clear_account_model("acme", "openai_model")
    with pytest.raises(EtagMismatch):
        client.clear_account_model("acme", "openai_model", etag=etag)


def test_malformed_account_id_wins_over_stale_etag(client):
    with pytest.raises(InvalidArgument):
        client.set_model("openai_model", 2, account_id="bad id", etag="a999")


def test_validate_only_in_account_scope_leaves_the_account_alone(client):
    reply = client.set_model("openai_model", 2, account_id="acme", validate_only=True)
    assert reply.etag == "a0"
    resolved = client.resolve_for_account("acme", ["openai_model"])
    assert (resolved.etag, resolved.slots[0].source) == ("a0", pb.SOURCE_GLOBAL)
