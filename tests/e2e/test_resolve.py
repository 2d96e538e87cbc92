"""ResolveForAccount: the merge rule `account override || global setting || slot default`."""

from __future__ import annotations

import pytest

from modelconfig import InvalidArgument
from modelconfig.v1 import resources_pb2 as pb


def sources(reply) -> dict[str, tuple[str, int]]:
    return {s.slot: (s.model.model_name, s.source) for s in reply.slots}


def test_account_without_overrides_gets_globals_and_defaults(client):
    reply = client.resolve_for_account("acme")
    assert reply.account_id == "acme"
    assert sources(reply) == {
        "openai_model": ("gpt-4o-mini", pb.SOURCE_GLOBAL),
        "dalle_model": ("dall-e-3", pb.SOURCE_GLOBAL),
        "runware_model": ("runware-flux-1.1-pro", pb.SOURCE_GLOBAL),
        "anthropic_model": ("claude-3-5-sonnet-20241022", pb.SOURCE_DEFAULT),
    }
    assert reply.etag == "a0"


def test_override_wins_for_that_account_only(client):
    client.set_model("anthropic_model", "claude-3-haiku-20240307", account_id="acme")
    assert sources(client.resolve_for_account("acme"))["anthropic_model"] == (
        "claude-3-haiku-20240307",
        pb.SOURCE_ACCOUNT,
    )
    assert sources(client.resolve_for_account("other"))["anthropic_model"] == (
        "claude-3-5-sonnet-20241022",
        pb.SOURCE_DEFAULT,
    )


def test_global_change_reaches_accounts_without_override(client):
    client.set_global_model("openai_model", "gpt-3.5-turbo")
    assert sources(client.resolve_for_account("acme"))["openai_model"] == (
        "gpt-3.5-turbo",
        pb.SOURCE_GLOBAL,
    )


def test_deactivated_override_is_kept_skipped_and_wins_again(client):
    client.set_model("openai_model", 3, account_id="acme")
    client.update_model(pb.Model(id=3, is_active=False), ["is_active"])
    assert sources(client.resolve_for_account("acme"))["openai_model"] == (
        "gpt-4o-mini",
        pb.SOURCE_GLOBAL,
    )
    usage = client.get_model_usage(3)
    assert (usage.account_override_count, list(usage.account_ids)) == (1, ["acme"])
    client.update_model(pb.Model(id=3, is_active=True), ["is_active"])
    assert sources(client.resolve_for_account("acme"))["openai_model"] == (
        "gpt-4-turbo-2024-04-09",
        pb.SOURCE_ACCOUNT,
    )


def test_requested_slots_in_request_order(client):
    reply = client.resolve_for_account("acme", ["runware_model", "openai_model"])
    assert [s.slot for s in reply.slots] == ["runware_model", "openai_model"]


def test_resolved_models_carry_exact_prices_and_labels(client):
    reply = client.resolve_for_account("acme", ["openai_model", "dalle_model"])
    text, image = reply.slots[0].model, reply.slots[1].model
    assert (text.input_price_per_1m_tokens, text.output_price_per_1m_tokens) == ("0.15", "0.60")
    assert text.price_per_image == ""
    assert text.label == "GPT-4o Mini (gpt-4o-mini) - $0.15/$0.60 per 1M tokens"
    assert image.label == "DALL-E 3 (dall-e-3) - $0.04 per image"


def test_revision_and_etag_track_writes(client):
    first = client.resolve_for_account("acme")
    write = client.set_model("openai_model", 2, account_id="acme")
    second = client.resolve_for_account("acme")
    assert second.revision == write.revision > first.revision
    assert second.etag == write.etag != first.etag
    other = client.resolve_for_account("other")
    assert other.revision == second.revision and other.etag == "a0"


@pytest.mark.parametrize(
    ("account", "slots", "reason"),
    [
        ("", [], "ACCOUNT_ID_REQUIRED"),
        ("has space", [], "INVALID_ACCOUNT_ID"),
        ("x" * 129, [], "INVALID_ACCOUNT_ID"),
        ("acme", ["openai_model", "nope"], "UNKNOWN_SLOT"),
    ],
)
def test_bad_resolve_requests_are_invalid_argument(client, account, slots, reason):
    with pytest.raises(InvalidArgument) as err:
        client.resolve_for_account(account, slots)
    assert err.value.reason == reason
    assert err.value.field_violations
