"""ResolveForAccounts: many accounts in one call, one result each, per-account errors."""

from __future__ import annotations

import grpc
import pytest

from modelconfig import InvalidArgument
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb


def test_batch_matches_single_calls_in_request_order(client):
    client.set_model("openai_model", 2, account_id="b")
    ids = ["a", "b", "c", "b"]
    batch = client.resolve_for_accounts(ids)
    assert [r.account_id for r in batch.results] == ids
    for result in batch.results:
        single = client.resolve_for_account(result.account_id)
        assert list(result.slots) == list(single.slots)
        assert result.etag == single.etag
        assert not result.HasField("error")
    assert batch.revision == client.get_global_settings().revision


def test_bad_account_id_fails_only_its_entry(client):
    batch = client.resolve_for_accounts(["good", "bad id", ""], ["openai_model"])
    good, bad, empty = batch.results
    assert good.slots[0].model.model_name == "gpt-4o-mini" and not good.HasField("error")
    assert (bad.error.code, bad.error.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT.value[0],
        "INVALID_ACCOUNT_ID",
    )
    assert not bad.slots and not bad.etag
    assert empty.error.reason == "ACCOUNT_ID_REQUIRED"


@pytest.mark.parametrize(
    ("ids", "slots", "reason"),
    [
        ([], [], "NO_ACCOUNT_IDS"),
        (["a"] * 1001, [], "BATCH_TOO_LARGE"),
        (["a"], ["nope"], "UNKNOWN_SLOT"),
    ],
)
def test_malformed_batches_are_refused_whole(client, ids, slots, reason):
    with pytest.raises(InvalidArgument) as err:
        client.resolve_for_accounts(ids, slots)
    assert err.value.reason == reason


def test_largest_batch_is_answered(client):
    batch = client.resolve_for_accounts([f"acct-{i}" for i in range(1000)], ["dalle_model"])
    assert len(batch.results) == 1000
    assert {r.slots[0].model.model_name for r in batch.results} == {"dall-e-3"}


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("ResolveForAccount", api.ResolveForAccountRequest(account_id="acme")),
        (
            "ResolveForAccount",
            api.ResolveForAccountRequest(
                account_id="acct:42@tenant", slots=["anthropic_model", "openai_model"]
            ),
        ),
        (
            "ResolveForAccounts",
            api.ResolveForAccountsRequest(
                account_ids=["acme", "bad id", "b"], slots=["runware_model"]
            ),
        ),
    ],
)
def test_served_bytes_are_what_protobuf_would_serialize(daemon, method, request_message):
    """The hot path assembles responses from cached wire bytes: they must be canonical."""
    daemon.client.set_model("openai_model", 3, account_id="acme")
    # And a skipped override, which the answer shows beside the model used instead.
    daemon.client.set_model("anthropic_model", 5, account_id="acme")
    daemon.client.update_model(pb.Model(id=5, is_active=False), ["is_active"])
    call = daemon.channel.unary_unary(
        f"/modelconfig.v1.ModelConfigService/{method}",
        request_serializer=lambda m: m.SerializeToString(),
    )
    raw = call(request_message, timeout=5)
    response_class = getattr(api, f"{method}Response")
    parsed = response_class.FromString(raw)
    assert parsed.SerializeToString(deterministic=True) == raw
    assert parsed.revision > 0
    if request_message.DESCRIPTOR.name == "ResolveForAccountRequest":
        skipped = {s.slot: s.skipped_override.id for s in parsed.slots}
        assert skipped.get("anthropic_model", 0) == (5 if parsed.account_id == "acme" else 0)
