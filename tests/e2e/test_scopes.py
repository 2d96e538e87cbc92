"""SetModel scopes, ClearGlobalModel and skipped overrides, over a real port on both engines.

A write names its scope: SCOPE_GLOBAL with no account, or an account (SCOPE_ACCOUNT or unset);
an empty account alone is never taken as "global". The command line asks for --global or
--account just as explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest

from modelconfig import EtagMismatch, InvalidArgument, NotFound, from_rpc_error
from modelconfig.cli.main import main
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb

TURBO = "gpt-4-turbo-2024-04-09"  # model 3, openai text


def global_ids(client) -> dict[str, int | None]:
    return {
        s.slot: (s.model.id if s.HasField("model") else None)
        for s in client.get_global_settings().slots
    }


def resolved_openai(client, account: str = "acme") -> pb.ResolvedSlot:
    return client.resolve_for_account(account, ["openai_model"]).slots[0]


def set_active(client, model_id: int, active: bool) -> None:
    client.update_model(pb.Model(id=model_id, is_active=active), ["is_active"])


# -- SetModel scopes ---------------------------------------------------------------------------


def test_scope_global_with_an_empty_account_writes_the_global_setting(client):
    before = client.get_global_settings()
    reply = client.set_model("openai_model", 2, scope=pb.SCOPE_GLOBAL)
    assert reply.revision == before.revision + 1
    assert global_ids(client)["openai_model"] == 2
    assert reply.etag == client.get_global_settings().etag != before.etag
    got = resolved_openai(client)
    assert (got.model.id, got.source) == (2, pb.SOURCE_GLOBAL)
    assert client.resolve_for_account("acme").etag == "a0"  # no override was written


@pytest.mark.parametrize(
    "scope", [pb.SCOPE_UNSPECIFIED, pb.SCOPE_ACCOUNT], ids=["unset", "SCOPE_ACCOUNT"]
)
def test_an_account_writes_that_accounts_override_only(client, scope):
    globals_before = client.get_global_settings()
    reply = client.set_model("openai_model", 2, account_id="acme", scope=scope)
    got = resolved_openai(client)
    assert (got.model.id, got.source) == (2, pb.SOURCE_ACCOUNT)
    assert reply.etag == client.resolve_for_account("acme").etag == f"a{reply.revision}"
    assert resolved_openai(client, "globex").source == pb.SOURCE_GLOBAL
    after = client.get_global_settings()
    assert global_ids(client)["openai_model"] == 1
    assert after.etag == globals_before.etag


def test_empty_account_without_scope_is_scope_required_and_changes_nothing(client):
    before = client.get_global_settings()
    with pytest.raises(InvalidArgument) as err:
        client.set_model("openai_model", 2)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.reason == "SCOPE_REQUIRED"
    assert [v.field for v in err.value.field_violations] == ["scope"]
    assert client.get_global_settings() == before  # revision, etag and every global unchanged
    assert resolved_openai(client).model.id == 1


def test_scope_global_with_an_account_is_scope_conflict(client):
    before = client.get_global_settings()
    with pytest.raises(InvalidArgument) as err:
        client.set_model("openai_model", 2, account_id="acme", scope=pb.SCOPE_GLOBAL)
    assert err.value.reason == "SCOPE_CONFLICT"
    assert err.value.metadata["account_id"] == "acme"
    assert client.get_global_settings() == before
    assert client.resolve_for_account("acme").etag == "a0"


def test_scope_account_with_an_empty_account_is_scope_conflict(client):
    before = client.get_global_settings()
    with pytest.raises(InvalidArgument) as err:
        client.set_model("openai_model", 2, scope=pb.SCOPE_ACCOUNT)
    assert err.value.reason == "SCOPE_CONFLICT"
    assert [v.field for v in err.value.field_violations] == ["account_id"]
    assert client.get_global_settings() == before


def test_scope_is_checked_before_the_etag(client):
    with pytest.raises(InvalidArgument) as err:
        client.set_model("openai_model", 2, etag="g999")
    assert err.value.reason == "SCOPE_REQUIRED"


def test_scope_required_comes_before_other_malformed_fields(client):
    with pytest.raises(InvalidArgument) as err:
        client.set_model("no_such_slot", -1)
    assert err.value.reason == "SCOPE_REQUIRED"


def test_scope_account_with_a_malformed_account_is_invalid_account_id(client):
    with pytest.raises(InvalidArgument) as err:
        client.set_model("openai_model", 2, account_id="bad id", scope=pb.SCOPE_ACCOUNT)
    assert err.value.reason == "INVALID_ACCOUNT_ID"


def test_unknown_scope_number_is_invalid_scope(daemon):
    before = daemon.client.get_global_settings()
    request = api.SetModelRequest(slot="openai_model", model_id=2, scope=7)
    with pytest.raises(grpc.RpcError) as raised:
        daemon.stub.SetModel(request, timeout=10)
    err = from_rpc_error(raised.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.reason == "INVALID_SCOPE"
    assert daemon.client.get_global_settings() == before


# -- ClearGlobalModel --------------------------------------------------------------------------


def test_clear_global_model_falls_back_to_the_slot_default(client):
    client.set_global_model("openai_model", 2)
    before = client.get_global_settings()
    reply = client.clear_global_model("openai_model")
    assert reply.revision == before.revision + 1
    after = client.get_global_settings()
    assert reply.etag == after.etag != before.etag
    assert after.revision == reply.revision
    assert global_ids(client)["openai_model"] is None
    got = resolved_openai(client)
    assert (got.model.id, got.source) == (1, pb.SOURCE_DEFAULT)


def test_clear_global_model_keeps_account_overrides(client):
    client.set_model("openai_model", 3, account_id="acme")
    client.clear_global_model("openai_model")
    got = resolved_openai(client)
    assert (got.model.id, got.source) == (3, pb.SOURCE_ACCOUNT)
    assert resolved_openai(client, "globex").source == pb.SOURCE_DEFAULT


def test_clearing_a_global_that_is_not_set_is_not_found(client):
    client.clear_global_model("openai_model")
    before = client.get_global_settings()
    for slot in ("openai_model", "anthropic_model"):  # cleared, and never set by the seed
        with pytest.raises(NotFound) as err:
            client.clear_global_model(slot)
        assert err.value.reason == "GLOBAL_SETTING_NOT_FOUND"
        assert err.value.metadata["slot"] == slot
    assert client.get_global_settings() == before


def test_clear_global_model_with_a_stale_etag_is_aborted(client):
    stale = client.get_global_settings().etag
    client.set_global_model("openai_model", 2)
    with pytest.raises(EtagMismatch) as err:
        client.clear_global_model("openai_model", etag=stale)
    assert err.value.code == grpc.StatusCode.ABORTED
    assert err.value.reason == "ETAG_MISMATCH"
    assert global_ids(client)["openai_model"] == 2


def test_clear_global_model_with_the_current_etag_clears(client):
    current = client.get_global_settings().etag
    client.clear_global_model("dalle_model", etag=current)
    assert global_ids(client)["dalle_model"] is None


def test_clear_global_model_of_an_unknown_slot_is_invalid_argument(client):
    with pytest.raises(InvalidArgument) as err:
        client.clear_global_model("gemini_model")
    assert err.value.reason == "UNKNOWN_SLOT"
    assert [v.field for v in err.value.field_violations] == ["slot"]


def test_clear_global_checks_the_etag_before_the_setting(client):
    stale = client.get_global_settings().etag
    client.set_global_model("openai_model", 2)
    with pytest.raises(InvalidArgument):
        client.clear_global_model("gemini_model", etag=stale)
    with pytest.raises(EtagMismatch):  # anthropic_model has no global: ABORTED comes first
        client.clear_global_model("anthropic_model", etag=stale)


# -- skipped overrides -------------------------------------------------------------------------


def test_override_of_a_deactivated_model_is_skipped_and_named(client):
    client.set_model("openai_model", 3, account_id="acme")
    set_active(client, 3, False)
    got = resolved_openai(client)
    assert (got.model.id, got.source) == (1, pb.SOURCE_GLOBAL)
    assert got.HasField("skipped_override")
    assert got.skipped_override.model_name == TURBO
    assert got.skipped_override.id == 3
    assert not got.skipped_override.is_active


def test_skipped_override_falls_back_to_the_default_without_a_global(client):
    client.set_model("openai_model", 3, account_id="acme")
    client.clear_global_model("openai_model")
    set_active(client, 3, False)
    got = resolved_openai(client)
    assert (got.model.id, got.source) == (1, pb.SOURCE_DEFAULT)
    assert got.skipped_override.model_name == TURBO


def test_skipped_override_is_unset_when_the_override_is_active_or_absent(client):
    client.set_model("openai_model", 3, account_id="acme")
    active = resolved_openai(client)
    assert active.source == pb.SOURCE_ACCOUNT and not active.HasField("skipped_override")
    set_active(client, 3, False)
    assert not resolved_openai(client, "globex").HasField("skipped_override")  # no override
    others = client.resolve_for_account("acme").slots
    assert [s.slot for s in others if s.HasField("skipped_override")] == ["openai_model"]


def test_reactivating_makes_the_override_win_again(client):
    client.set_model("openai_model", 3, account_id="acme")
    set_active(client, 3, False)
    assert resolved_openai(client).source == pb.SOURCE_GLOBAL
    set_active(client, 3, True)
    got = resolved_openai(client)
    assert (got.model.id, got.source) == (3, pb.SOURCE_ACCOUNT)
    assert not got.HasField("skipped_override")


def test_batch_resolution_reports_the_skipped_override_too(client):
    client.set_model("openai_model", 3, account_id="acme")
    set_active(client, 3, False)
    batch = client.resolve_for_accounts(["acme", "globex"], ["openai_model"])
    acme, globex = (r.slots[0] for r in batch.results)
    assert (acme.source, acme.skipped_override.model_name) == (pb.SOURCE_GLOBAL, TURBO)
    assert not globex.HasField("skipped_override")


# -- the command line --------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def ctl(daemon, capsys):
    def run(*args: str) -> Run:
        try:
            code = main(["--target", daemon.address, *args])
        except SystemExit as exited:
            code = exited.code
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def test_ctl_set_without_a_scope_exits_2(ctl, client):
    before = client.get_global_settings()
    run = ctl("set", "openai_model", "gpt-3.5-turbo")
    assert run.code == 2
    assert "one of the arguments --global --account is required" in run.err
    assert client.get_global_settings() == before


def test_ctl_set_with_an_empty_account_exits_2_pointing_to_global(ctl, client):
    before = client.get_global_settings()
    run = ctl("set", "openai_model", "gpt-3.5-turbo", "--account", "")
    assert run.code == 2
    assert "--account" in run.err and "--global" in run.err
    assert client.get_global_settings() == before


def test_ctl_set_global_writes_the_global_setting(ctl, client):
    run = ctl("set", "openai_model", "gpt-3.5-turbo", "--global")
    assert (run.code, run.err) == (0, "")
    assert run.out.startswith("set openai_model = gpt-3.5-turbo (global)\n")
    assert global_ids(client)["openai_model"] == 2
    assert client.resolve_for_account("acme").etag == "a0"


def test_ctl_clear_global_clears_the_global_setting(ctl, client):
    run = ctl("clear", "openai_model", "--global")
    assert (run.code, run.err) == (0, "")
    current = client.get_global_settings()
    assert run.out == (
        f"cleared openai_model (global)\netag: {current.etag}  revision: {current.revision}\n"
    )
    assert global_ids(client)["openai_model"] is None
    again = ctl("clear", "openai_model", "--global")
    assert again.code == 3
    assert again.err.startswith("error: NOT_FOUND GLOBAL_SETTING_NOT_FOUND: ")


def test_ctl_resolve_notes_a_skipped_override(ctl, client):
    client.set_model("openai_model", 3, account_id="acme")
    set_active(client, 3, False)
    run = ctl("resolve", "acme")
    assert (run.code, run.err) == (0, "")
    lines = run.out.splitlines()
    assert lines[0].split() == ["SLOT", "MODEL", "SOURCE", "NOTE"]
    openai = next(line for line in lines if line.startswith("openai_model "))
    assert openai.split() == [
        "openai_model", "gpt-4o-mini", "global", "override", TURBO, "skipped:", "inactive"]
    dalle = next(line for line in lines if line.startswith("dalle_model "))
    # The seed dates dall-e-3's deprecation to the day its page said it was removed.
    assert dalle.split() == [
        "dalle_model", "dall-e-3", "global", "deprecated", "since", "2026-11-30"]
    runware = next(line for line in lines if line.startswith("runware_model "))
    assert runware.split() == ["runware_model", "runware-flux-1.1-pro", "global"]
