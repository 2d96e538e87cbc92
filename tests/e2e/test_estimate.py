"""EstimateCost over a real port on SQLite and PostgreSQL: the arithmetic on the seeded prices
(exact decimals), the order, missing prices, the scopes, weighting by accounts, refusals."""

from __future__ import annotations

import pytest

from modelconfig import InvalidArgument
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb

GLOBAL = pb.SCOPE_GLOBAL


def table(response) -> list[tuple[str, str, str, bool, list[str]]]:
    return [
        (e.model.model_name, e.cost, e.difference, e.current, list(e.missing_prices))
        for e in response.estimates
    ]


def test_the_seeded_text_models_priced_cheapest_first(client):
    # 10M input and 2M output tokens at the seed document's prices per 1M tokens.
    answer = client.estimate_cost(
        "openai_model", scope=GLOBAL, input_tokens=10_000_000, output_tokens=2_000_000
    )
    assert table(answer) == [
        ("gpt-5-nano", "1.3", "-1.4", False, []),  # 0.05 x 10 + 0.40 x 2
        ("gpt-4.1-nano", "1.8", "-0.9", False, []),  # 0.10 x 10 + 0.40 x 2
        ("gpt-4o-mini", "2.7", "0", True, []),  # 0.15 x 10 + 0.60 x 2
        ("gpt-5-mini", "6.5", "3.8", False, []),  # 0.25 x 10 + 2.00 x 2
        ("gpt-4.1-mini", "7.2", "4.5", False, []),  # 0.40 x 10 + 1.60 x 2
        ("gpt-3.5-turbo", "8", "5.3", False, []),  # 0.50 x 10 + 1.50 x 2
        ("gpt-5", "32.5", "29.8", False, []),  # 1.25 x 10 + 10.00 x 2
        ("gpt-4.1", "36", "33.3", False, []),  # 2.00 x 10 + 8.00 x 2
        ("gpt-4o", "45", "42.3", False, []),  # 2.50 x 10 + 10.00 x 2
        ("gpt-4-turbo-2024-04-09", "160", "157.3", False, []),  # 10 x 10 + 30 x 2
    ]
    assert answer.revision == client.get_global_settings().revision


def test_small_volumes_stay_exact(client):
    answer = client.estimate_cost("anthropic_model", scope=GLOBAL, input_tokens=1, output_tokens=3)
    # 3 / 1M + 3 x 15 / 1M and 0.25 / 1M + 3 x 1.25 / 1M: no float could say these.
    rows = {name: row for name, *row in table(answer)}
    assert table(answer)[0][:3] == ("claude-3-haiku-20240307", "0.000004", "-0.000044")
    assert rows["claude-3-5-sonnet-20241022"][:3] == ["0.000048", "0", True]
    # 0.80 / 1M + 3 x 4.00 / 1M
    assert rows["claude-3-5-haiku-20241022"][:2] == ["0.0000128", "-0.0000352"]


def test_a_price_the_volume_needs_and_a_model_lacks_is_named_not_free(client):
    answer = client.estimate_cost("openai_model", scope=GLOBAL, cached_input_tokens=1_000_000)
    unpriced = [e for e in answer.estimates if not e.cost]
    assert {e.model.model_name for e in unpriced} == {
        "gpt-3.5-turbo", "gpt-4-turbo-2024-04-09", "gpt-4.1-mini", "gpt-5"
    }
    assert all(list(e.missing_prices) == ["cached_input_price_per_1m_tokens"] for e in unpriced)
    assert answer.estimates[-len(unpriced):] == unpriced  # listed last, never as free
    assert table(answer)[0] == ("gpt-5-nano", "0.005", "-0.07", False, [])
    images = client.estimate_cost("dalle_model", scope=GLOBAL, images=1000, input_tokens=5)
    assert table(images) == [("dall-e-3", "", "", True, ["input_price_per_1m_tokens"])]


def test_an_accounts_estimate_starts_from_its_own_model(client):
    client.set_model("openai_model", "gpt-4-turbo-2024-04-09", account_id="acme")
    answer = client.estimate_cost("openai_model", account_id="acme", input_tokens=1_000_000)
    current = [e.model.model_name for e in answer.estimates if e.current]
    assert current == ["gpt-4-turbo-2024-04-09"]
    assert table(answer)[0][:3] == ("gpt-5-nano", "0.05", "-9.95")


def test_inactive_models_are_not_candidates(client):
    model = client.get_model("gpt-3.5-turbo").model
    model.is_active = False
    client.update_model(model, ["is_active"])
    answer = client.estimate_cost("openai_model", scope=GLOBAL, input_tokens=1_000_000)
    assert "gpt-3.5-turbo" not in [e.model.model_name for e in answer.estimates]


def test_weighting_counts_the_accounts_a_global_switch_moves(client):
    client.import_overrides(
        [
            api.OverrideRecord(account_id=a, slot=s, model_name=m)
            for a, s, m in [
                ("acme", "openai_model", "gpt-4-turbo-2024-04-09"),  # overrides: not moved
                ("globex", "dalle_model", "dall-e-3"),  # follows the global for openai_model
                ("initech", "anthropic_model", "claude-3-haiku-20240307"),  # follows too
            ]
        ]
    )
    answer = client.estimate_cost(
        "openai_model", scope=GLOBAL, input_tokens=1_000_000, weight_by_accounts=True
    )
    assert (answer.accounts_following, answer.accounts_overriding) == (2, 1)
    assert table(answer)[:3] == [
        ("gpt-5-nano", "0.1", "-0.2", False, []),
        ("gpt-4.1-nano", "0.2", "-0.1", False, []),
        ("gpt-4o-mini", "0.3", "0", True, []),
    ]


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"slot": "openai_model", "input_tokens": 1}, "SCOPE_REQUIRED"),
        ({"slot": "nope", "scope": GLOBAL, "input_tokens": 1}, "UNKNOWN_SLOT"),
        ({"slot": "openai_model", "scope": GLOBAL}, "NO_VOLUME"),
        ({"slot": "openai_model", "scope": GLOBAL, "input_tokens": -1}, "INVALID_VOLUME"),
        ({"slot": "openai_model", "scope": GLOBAL, "images": 10**16}, "INVALID_VOLUME"),
        (
            {
                "slot": "openai_model",
                "account_id": "acme",
                "input_tokens": 1,
                "weight_by_accounts": True,
            },
            "WEIGHT_NEEDS_GLOBAL_SCOPE",
        ),
        ({"slot": "openai_model", "account_id": "bad id", "input_tokens": 1}, "INVALID_ACCOUNT_ID"),
    ],
)
def test_bad_estimates_are_invalid_argument(client, arguments, reason):
    arguments = dict(arguments)  # the same dict serves both engines
    slot = arguments.pop("slot")
    with pytest.raises(InvalidArgument) as refused:
        client.estimate_cost(slot, **arguments)
    assert refused.value.reason == reason


def test_a_cached_input_price_prices_cached_tokens(client):
    model = client.get_model("gpt-4o-mini").model
    assert model.cached_input_price_per_1m_tokens == "0.075"  # seeded
    model.cached_input_price_per_1m_tokens = "0.08"
    client.update_model(model, ["cached_input_price_per_1m_tokens"])
    answer = client.estimate_cost(
        "openai_model",
        scope=GLOBAL,
        input_tokens=1_000_000,
        cached_input_tokens=4_000_000,
        output_tokens=1_000_000,
    )
    rows = {name: row for name, *row in table(answer)}
    assert rows["gpt-4o-mini"] == ["1.07", "0", True, []]  # 0.15 + 4 x 0.08 + 0.60
    assert rows["gpt-5-nano"] == ["0.47", "-0.6", False, []]  # 0.05 + 4 x 0.005 + 0.40
    # Models without a cached-input price: unknown, named.
    assert [name for name, row in rows.items() if row[3]] == [
        "gpt-3.5-turbo", "gpt-4-turbo-2024-04-09", "gpt-4.1-mini", "gpt-5"
    ]
    change = client.list_changes(page_size=1).changes[0]
    assert list(change.changed_fields.paths) == ["cached_input_price_per_1m_tokens"]
    assert change.after.model.cached_input_price_per_1m_tokens == "0.08"


def test_an_image_model_refuses_a_cached_input_price(client):
    model = client.get_model("dall-e-3").model
    model.cached_input_price_per_1m_tokens = "0.01"
    with pytest.raises(InvalidArgument) as refused:
        client.update_model(model, ["cached_input_price_per_1m_tokens"])
    assert refused.value.field_violations[0].field == "model.cached_input_price_per_1m_tokens"


def test_images_are_priced_at_a_size_and_quality_where_the_provider_charges_so(client):
    answer = client.estimate_cost(
        "dalle_model", scope=GLOBAL, images=1000, image_size="1024x1792", image_quality="hd"
    )
    assert table(answer) == [("dall-e-3", "120", "0", True, [])]  # 1000 x 0.12
    runware = client.estimate_cost(
        "runware_model", scope=GLOBAL, images=10, image_size="1024x1024", image_quality="hd"
    )
    # The FLUX models are priced per image only: the tier's price is named missing.
    assert {tuple(e.missing_prices) for e in runware.estimates} == {
        ("image_prices[1024x1024:hd]",)
    }
    plain = client.estimate_cost("dalle_model", scope=GLOBAL, images=1000)
    assert table(plain) == [("dall-e-3", "40", "0", True, [])]  # price_per_image: 0.04


@pytest.mark.parametrize(
    "tier", [{"image_size": "1024x1024"}, {"image_quality": "hd"},
             {"image_size": "big", "image_quality": "hd"},
             {"image_size": "1024x1024", "image_quality": "HD!"}]
)
def test_an_image_tier_needs_a_size_and_a_quality(client, tier):
    with pytest.raises(InvalidArgument) as refused:
        client.estimate_cost("dalle_model", scope=GLOBAL, images=1, **tier)
    assert refused.value.reason == "INVALID_IMAGE_TIER"
