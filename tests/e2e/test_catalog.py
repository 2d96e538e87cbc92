"""The catalog RPCs: ListModels, GetModel, CreateModel, UpdateModel, DeleteModel, GetModelUsage."""

from __future__ import annotations

import pytest

from modelconfig import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from modelconfig.v1 import resources_pb2 as pb
from modelconfigd.adapters.migrations import load_seed

# The seed document's models keep their ids and meaning; the catalog file adds the models it asks
# for after them.
SEED_MODELS = load_seed()["models"]
NEXT_ID = max(m["id"] for m in SEED_MODELS) + 1

SEEDED = [
    (1, "gpt-4o-mini", "openai", pb.MODEL_TYPE_TEXT, "0.15", "0.60", "", 128000, 16384),
    (2, "gpt-3.5-turbo", "openai", pb.MODEL_TYPE_TEXT, "0.50", "1.50", "", 16385, 4096),
    (3, "gpt-4-turbo-2024-04-09", "openai", pb.MODEL_TYPE_TEXT, "10", "30", "", 128000, 4096),
    (4, "claude-3-5-sonnet-20241022", "anthropic", pb.MODEL_TYPE_TEXT, "3", "15", "", 200000, 8192),
    (
        5,
        "claude-3-haiku-20240307",
        "anthropic",
        pb.MODEL_TYPE_TEXT,
        "0.25",
        "1.25",
        "",
        200000,
        4096,
    ),
    (6, "runware-flux-1.1-pro", "runware", pb.MODEL_TYPE_IMAGE, "", "", "0.04", 0, 0),
    (7, "dall-e-3", "openai", pb.MODEL_TYPE_IMAGE, "", "", "0.04", 0, 0),
]


def text_model(name: str, **fields) -> pb.Model:
    defaults = {
        "provider": "openai",
        "model_type": pb.MODEL_TYPE_TEXT,
        "is_active": True,
        "input_price_per_1m_tokens": "2.50",
        "output_price_per_1m_tokens": "10",
    }
    return pb.Model(**{**defaults, "model_name": name, **fields})


def row(m: pb.Model) -> tuple:
    return (
        m.id,
        m.model_name,
        m.provider,
        m.model_type,
        m.input_price_per_1m_tokens,
        m.output_price_per_1m_tokens,
        m.price_per_image,
        m.context_window,
        m.max_output_tokens,
    )


def test_seeded_catalog_has_the_seed_ids_prices_and_limits(client):
    models = list(client.iter_models())
    assert [row(m) for m in models[:7]] == SEEDED
    assert all(m.is_active for m in models)
    assert list(models[5].aliases) == ["runware:97@1", "bfl:2@1"]
    assert [m.id for m in models] == [m["id"] for m in SEED_MODELS]


def test_the_models_the_seed_document_asks_for_are_seeded(client):
    names = {m.model_name for m in client.iter_models()}
    assert {"gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5", "gpt-5-mini"} <= names
    assert {"claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"} <= names
    assert {"runware-flux-1.1-pro-ultra", "runware-flux-1-kontext-pro"} <= names
    assert client.get_model("gpt-4o").model.input_price_per_1m_tokens == "2.50"


PRICES = (
    "input_price_per_1m_tokens",
    "cached_input_price_per_1m_tokens",
    "output_price_per_1m_tokens",
    "price_per_image",
)


def test_every_seeded_price_has_a_source_and_the_day_it_was_checked(client):
    for model in client.iter_models():
        sources = {s.price: s for s in model.price_sources}
        priced = {p for p in PRICES if getattr(model, p)}
        assert priced and set(sources) == priced, model.model_name
        for source in sources.values():
            assert source.source_url.startswith("https://"), model.model_name
            assert source.checked_on == "2026-11-30"
        for image_price in model.image_prices:
            assert image_price.source_url.startswith("https://")
            assert image_price.checked_on == "2026-11-30"


def test_dall_e_3_is_priced_per_size_and_quality(client):
    prices = {(p.size, p.quality): p.price for p in client.get_model("dall-e-3").model.image_prices}
    assert prices == {
        ("1024x1024", "standard"): "0.04",
        ("1024x1792", "standard"): "0.08",
        ("1792x1024", "standard"): "0.08",
        ("1024x1024", "hd"): "0.08",
        ("1024x1792", "hd"): "0.12",
        ("1792x1024", "hd"): "0.12",
    }


def test_list_filters(client):
    client.update_model(pb.Model(id=2, is_active=False), ["is_active"])
    names = lambda **f: [m.model_name for m in client.iter_models(**f)]  # noqa: E731
    seeded = lambda **f: [m["model_name"] for m in SEED_MODELS if f.items() <= m.items()]  # noqa: E731
    assert names(provider="anthropic") == seeded(provider="anthropic")
    assert names(model_type=pb.MODEL_TYPE_IMAGE) == seeded(model_type="image")
    assert names(model_type=pb.MODEL_TYPE_IMAGE)[:2] == ["runware-flux-1.1-pro", "dall-e-3"]
    assert "gpt-3.5-turbo" not in names(active_only=True)
    assert len(names(active_only=True)) == len(SEED_MODELS) - 1


def test_pagination_walks_every_model_once(client):
    page = client.list_models(page_size=3)
    seen = [m.id for m in page.models]
    assert len(seen) == 3 and page.next_page_token
    while page.next_page_token:
        page = client.list_models(page_size=3, page_token=page.next_page_token)
        seen += [m.id for m in page.models]
    assert seen == [m["id"] for m in SEED_MODELS]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"page_size": -1}, "INVALID_PAGE_SIZE"),
        ({"page_token": "not-a-token"}, "INVALID_PAGE_TOKEN"),
    ],
)
def test_bad_page_requests_are_invalid_argument(client, kwargs, reason):
    with pytest.raises(InvalidArgument) as err:
        client.list_models(**kwargs)
    assert err.value.reason == reason


def test_page_token_is_bound_to_its_filters(client):
    token = client.list_models(page_size=1, provider="openai").next_page_token
    with pytest.raises(InvalidArgument) as err:
        client.list_models(page_size=1, provider="anthropic", page_token=token)
    assert err.value.reason == "PAGE_TOKEN_FILTER_MISMATCH"


@pytest.mark.parametrize("ref", [6, "runware-flux-1.1-pro", "runware:97@1"])
def test_get_model_by_id_name_or_alias(client, ref):
    assert client.get_model(ref).model.id == 6


@pytest.mark.parametrize("ref", [99, "nope"])
def test_get_unknown_model_is_not_found(client, ref):
    with pytest.raises(NotFound):
        client.get_model(ref)


def test_get_model_without_reference_is_invalid(daemon):
    from modelconfig import from_rpc_error
    from modelconfig.v1 import model_config_service_pb2 as api

    try:
        daemon.stub.GetModel(api.GetModelRequest())
    except Exception as exc:
        assert isinstance(from_rpc_error(exc), InvalidArgument)
    else:
        pytest.fail("GetModel without a reference succeeded")


def test_created_ids_continue_after_the_seed_and_are_never_reused(client):
    first = client.create_model(text_model("o3")).model
    assert first.id == NEXT_ID
    client.delete_model(first.id)
    second = client.create_model(text_model("o4-mini")).model
    assert second.id == NEXT_ID + 1


def test_create_keeps_exact_prices_and_defaults_inactive(client):
    created = client.create_model(
        pb.Model(
            model_name="o1-mini",
            provider="openai",
            model_type=pb.MODEL_TYPE_TEXT,
            input_price_per_1m_tokens="1.100",
            output_price_per_1m_tokens="0.000000000001",
        )
    ).model
    assert not created.is_active
    fetched = client.get_model(created.id).model
    assert fetched.input_price_per_1m_tokens == "1.100"
    assert fetched.output_price_per_1m_tokens == "0.000000000001"
    assert fetched.display_name == "o1-mini"
    assert fetched.label == "o1-mini (o1-mini) - $1.10/$0.000000000001 per 1M tokens"


def test_free_is_zero_and_not_applicable_is_empty(client):
    created = client.create_model(
        text_model("free-model", input_price_per_1m_tokens="0", output_price_per_1m_tokens="")
    ).model
    assert (created.input_price_per_1m_tokens, created.output_price_per_1m_tokens) == ("0", "")


@pytest.mark.parametrize("name", ["gpt-4o-mini", "runware:97@1"])
def test_duplicate_name_or_alias_already_exists(client, name):
    with pytest.raises(AlreadyExists):
        client.create_model(text_model(name))
    with pytest.raises(AlreadyExists):
        client.create_model(text_model("fresh-name", aliases=[name]))


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"model_type": pb.MODEL_TYPE_UNSPECIFIED}, "model.model_type"),
        ({"provider": ""}, "model.provider"),
        ({"model_name": ""}, "model.model_name"),
        ({"input_price_per_1m_tokens": "-1"}, "model.input_price_per_1m_tokens"),
        ({"output_price_per_1m_tokens": "1e3"}, "model.output_price_per_1m_tokens"),
        ({"output_price_per_1m_tokens": "NaN"}, "model.output_price_per_1m_tokens"),
        ({"price_per_image": "0.04"}, "model.price_per_image"),
        ({"context_window": -5}, "model.context_window"),
        ({"aliases": ["new-alias", "new-alias"]}, "model.aliases[1]"),
    ],
)
def test_invalid_models_are_refused_naming_the_field(client, fields, bad_field):
    with pytest.raises(InvalidArgument) as err:
        client.create_model(text_model("new-model", **fields))
    assert bad_field in [v.field for v in err.value.field_violations]
    assert not any(m.model_name == "new-model" for m in client.iter_models())


def test_image_model_with_token_prices_is_refused(client):
    with pytest.raises(InvalidArgument) as err:
        client.create_model(
            pb.Model(
                model_name="img",
                provider="openai",
                model_type=pb.MODEL_TYPE_IMAGE,
                input_price_per_1m_tokens="1",
            )
        )
    assert err.value.field_violations[0].field == "model.input_price_per_1m_tokens"


def test_update_with_mask_changes_only_masked_fields(client):
    updated = client.update_model(
        pb.Model(id=2, display_name="GPT-3.5", input_price_per_1m_tokens="0.45", context_window=1),
        ["display_name", "input_price_per_1m_tokens"],
    ).model
    assert (updated.display_name, updated.input_price_per_1m_tokens) == ("GPT-3.5", "0.45")
    assert updated.context_window == 16385
    assert client.get_model(2).model == updated


def test_update_without_mask_changes_populated_fields(client):
    updated = client.update_model(pb.Model(id=2, display_name="Turbo")).model
    assert updated.display_name == "Turbo" and updated.output_price_per_1m_tokens == "1.50"


def test_update_star_mask_replaces_every_field(client):
    replacement = text_model("gpt-3.5-turbo", id=2, display_name="Replaced", is_active=True)
    updated = client.update_model(replacement, ["*"]).model
    assert updated.display_name == "Replaced" and updated.context_window == 0


def test_update_with_unknown_path_is_invalid(client):
    with pytest.raises(InvalidArgument) as err:
        client.update_model(pb.Model(id=2, display_name="x"), ["display_name", "colour"])
    assert err.value.reason == "INVALID_UPDATE_MASK"
    assert client.get_model(2).model.display_name == "GPT-3.5 Turbo"


def test_update_unknown_model_is_not_found(client):
    with pytest.raises(NotFound):
        client.update_model(pb.Model(id=404, display_name="x"), ["display_name"])


def test_update_to_taken_alias_already_exists(client):
    with pytest.raises(AlreadyExists):
        client.update_model(pb.Model(id=2, aliases=["runware:97@1"]), ["aliases"])


@pytest.mark.parametrize(("model_id", "holder"), [(1, "GLOBAL_SETTING"), (4, "SLOT_DEFAULT")])
def test_model_a_global_or_default_uses_cannot_be_deactivated(client, model_id, holder):
    with pytest.raises(FailedPrecondition) as err:
        client.update_model(pb.Model(id=model_id, is_active=False), ["is_active"])
    assert err.value.reason == "MODEL_IN_USE"
    assert holder in [v.type for v in err.value.violations]
    assert client.get_model(model_id).model.is_active


@pytest.mark.parametrize(
    ("fields", "path"),
    [({"model_name": "renamed"}, "model_name"), ({"provider": "azure"}, "provider")],
)
def test_identity_of_a_model_in_use_cannot_change(client, fields, path):
    client.set_model("openai_model", 2, account_id="acme")
    with pytest.raises(FailedPrecondition) as err:
        client.update_model(pb.Model(id=2, **fields), [path])
    assert "ACCOUNT_OVERRIDE" in [v.type for v in err.value.violations]


def test_identity_of_an_unused_model_can_change(client):
    updated = client.update_model(
        pb.Model(id=2, model_name="gpt-3.5-turbo-0125"), ["model_name"]
    ).model
    assert client.get_model("gpt-3.5-turbo-0125").model.id == updated.id == 2


@pytest.mark.parametrize(
    ("setup", "model_id", "holder"),
    [
        (lambda c: None, 1, "GLOBAL_SETTING"),
        (lambda c: None, 4, "SLOT_DEFAULT"),
        (lambda c: c.set_model("openai_model", 2, account_id="acme"), 2, "ACCOUNT_OVERRIDE"),
    ],
    ids=["global", "default", "override"],
)
def test_model_in_use_cannot_be_deleted(client, setup, model_id, holder):
    setup(client)
    with pytest.raises(FailedPrecondition) as err:
        client.delete_model(model_id)
    assert err.value.reason == "MODEL_IN_USE"
    assert holder in [v.type for v in err.value.violations]
    assert client.get_model(model_id).model.id == model_id


def test_unused_model_is_deleted_with_its_aliases(client):
    created = client.create_model(text_model("temp", aliases=["temp-alias"])).model
    client.delete_model(created.id)
    with pytest.raises(NotFound):
        client.get_model("temp-alias")
    client.create_model(text_model("again", aliases=["temp-alias"]))


def test_delete_unknown_model_is_not_found(client):
    with pytest.raises(NotFound):
        client.delete_model(404)


def test_model_usage_lists_every_holder(client):
    for account in ("zeta", "acme", "beta"):
        client.set_model("openai_model", 1, account_id=account)
    usage = client.get_model_usage(1)
    assert list(usage.global_slots) == ["openai_model"]
    assert list(usage.default_slots) == ["openai_model"]
    assert usage.account_override_count == 3
    assert list(usage.account_ids) == ["acme", "beta", "zeta"]
    unused = client.get_model_usage(2)
    assert (list(unused.global_slots), unused.account_override_count) == ([], 0)
    with pytest.raises(NotFound):
        client.get_model_usage(404)


@pytest.mark.parametrize(
    ("ref", "message"), [(99, "no model has id 99"), ("nope", "no model has name or alias 'nope'")]
)
def test_not_found_message_names_the_reference(client, ref, message):
    with pytest.raises(NotFound) as err:
        client.get_model(ref)
    assert err.value.message == message


def test_update_bumps_revision_once_and_a_no_op_not_at_all(client):
    r0 = client.get_global_settings().revision
    client.update_model(pb.Model(id=2, display_name="Turbo"), ["display_name"])
    client.update_model(pb.Model(id=2, display_name="Turbo"), ["display_name"])
    assert client.get_global_settings().revision == r0 + 1


def test_retyped_price_is_kept_as_typed(client):
    updated = client.update_model(
        pb.Model(id=1, input_price_per_1m_tokens="0.150"), ["input_price_per_1m_tokens"]
    ).model
    assert updated.input_price_per_1m_tokens == "0.150"
    assert client.get_model(1).model.input_price_per_1m_tokens == "0.150"


def test_malformed_update_is_invalid_before_the_model_is_looked_up(client):
    with pytest.raises(InvalidArgument):
        client.update_model(
            pb.Model(id=404, input_price_per_1m_tokens="-1"), ["input_price_per_1m_tokens"]
        )


def test_star_mask_with_an_unknown_path_is_invalid(client):
    with pytest.raises(InvalidArgument) as err:
        client.update_model(text_model("gpt-3.5-turbo", id=2), ["*", "colour"])
    assert err.value.reason == "INVALID_UPDATE_MASK"


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ({"model_type": pb.MODEL_TYPE_TEXT}, {"model_type": pb.MODEL_TYPE_IMAGE}),
        ({"active_only": True}, {"active_only": False}),
    ],
)
def test_page_token_is_bound_to_every_filter(client, first, then):
    token = client.list_models(page_size=1, **first).next_page_token
    with pytest.raises(InvalidArgument):
        client.list_models(page_size=1, page_token=token, **then)
