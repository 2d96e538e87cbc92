"""A model's lifecycle over a real port on both engines: deprecation dates, successors,
RetireModel with its revert, and ListAccounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelconfig import FailedPrecondition, InvalidArgument, NotFound
from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb

TODAY = datetime.now(UTC).date()


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


def revision(client) -> int:
    return client.get_global_settings().revision


def resolved(client, account: str, slot: str) -> pb.ResolvedSlot:
    return client.resolve_for_account(account, [slot]).slots[0]


def setting(client, slot: str) -> pb.SlotSetting:
    return next(s for s in client.get_global_settings().slots if s.slot == slot)


def overrides(client) -> dict[tuple[str, str], int]:
    return {
        (a.account_id, o.slot): o.model_id for a in client.iter_accounts() for o in a.overrides
    }


def import_rows(client, *rows: tuple[str, str, int]) -> None:
    client.import_overrides(
        [api.OverrideRecord(account_id=a, slot=s, model_id=m) for a, s, m in rows]
    )


# -- deprecation -------------------------------------------------------------------------------


def test_a_model_past_its_deprecation_date_resolves_marked_deprecated(client):
    client.update_model(pb.Model(id=1, deprecation_date=day(0)), ["deprecation_date"])
    answer = resolved(client, "acme", "openai_model")
    assert (answer.model.id, answer.deprecated) == (1, True)
    assert answer.model.deprecation_date == day(0)
    batch = client.resolve_for_accounts(["acme", "globex"], ["openai_model"])
    assert [r.slots[0].deprecated for r in batch.results] == [True, True]


def test_a_deprecation_date_ahead_is_not_deprecated_yet(client):
    client.update_model(pb.Model(id=1, deprecation_date=day(1)), ["deprecation_date"])
    assert resolved(client, "acme", "openai_model").deprecated is False
    client.update_model(pb.Model(id=1, deprecation_date=""), ["deprecation_date"])
    answer = resolved(client, "acme", "openai_model")
    assert (answer.deprecated, answer.model.deprecation_date) == (False, "")


def test_an_overridden_model_is_marked_by_its_own_date(client):
    client.update_model(pb.Model(id=9, deprecation_date=day(-3)), ["deprecation_date"])
    client.set_model("openai_model", 9, account_id="acme")
    assert resolved(client, "acme", "openai_model").deprecated is True
    assert resolved(client, "globex", "openai_model").deprecated is False  # gpt-4o-mini


def test_list_models_filters_on_deprecation(client):
    client.update_model(pb.Model(id=1, deprecation_date=day(30)), ["deprecation_date"])
    client.update_model(pb.Model(id=9, deprecation_date=day(-1)), ["deprecation_date"])
    ids = lambda which: {m.id for m in client.iter_models(deprecation=which)}  # noqa: E731
    everything = {m.id for m in client.iter_models()}
    scheduled = {m.id for m in client.iter_models() if m.deprecation_date}
    past = {m.id for m in client.iter_models() if "" < m.deprecation_date <= day(0)}
    assert {1, 9} <= scheduled and 1 not in past and 9 in past
    assert ids(pb.DEPRECATION_FILTER_SCHEDULED) == scheduled
    assert ids(pb.DEPRECATION_FILTER_PAST) == past
    assert ids(pb.DEPRECATION_FILTER_CURRENT) == everything - past
    token = client.list_models(page_size=1, deprecation=pb.DEPRECATION_FILTER_PAST).next_page_token
    with pytest.raises(InvalidArgument) as refused:  # a page token is bound to its filter
        client.list_models(page_size=1, page_token=token)
    assert refused.value.reason == "PAGE_TOKEN_FILTER_MISMATCH"
    with pytest.raises(InvalidArgument) as refused:
        client.list_models(deprecation=9)
    assert refused.value.reason == "INVALID_DEPRECATION_FILTER"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"deprecation_date": "2026-02-30"}, "model.deprecation_date"),
        ({"deprecation_date": "tomorrow"}, "model.deprecation_date"),
        ({"successor_id": -2}, "model.successor_id"),
    ],
)
def test_malformed_lifecycle_fields_are_invalid_argument(client, fields, field):
    with pytest.raises(InvalidArgument) as refused:
        client.update_model(pb.Model(id=2, **fields), list(fields))
    assert refused.value.reason == "INVALID_MODEL"
    assert [v.field for v in refused.value.field_violations] == [field]


def test_a_successor_must_exist_and_fit(client):
    with pytest.raises(NotFound):
        client.update_model(pb.Model(id=2, successor_id=999), ["successor_id"])
    with pytest.raises(FailedPrecondition) as refused:  # an anthropic model for an openai one
        client.update_model(pb.Model(id=2, successor_id=4), ["successor_id"])
    assert refused.value.reason == "SUCCESSOR_MISMATCH"
    with pytest.raises(InvalidArgument):
        client.update_model(pb.Model(id=2, successor_id=2), ["successor_id"])
    updated = client.update_model(pb.Model(id=2, successor_id=1), ["successor_id"])
    assert updated.model.successor_id == 1


def test_a_model_named_as_successor_cannot_be_deleted(client):
    created = client.create_model(
        pb.Model(model_name="o3", provider="openai", model_type=pb.MODEL_TYPE_TEXT)
    ).model
    client.update_model(pb.Model(id=2, successor_id=created.id), ["successor_id"])
    assert list(client.get_model_usage(created.id).successor_of) == [2]
    with pytest.raises(FailedPrecondition) as refused:
        client.delete_model(created.id)
    assert refused.value.reason == "MODEL_IN_USE"
    assert "SUCCESSOR:models/2" in refused.value.metadata["held_by"]


# -- sourced prices ----------------------------------------------------------------------------

SOURCE = "https://example.com/pricing"


def test_prices_with_sources_round_trip_through_create_and_update(client):
    created = client.create_model(
        pb.Model(
            model_name="flux-test",
            provider="runware",
            model_type=pb.MODEL_TYPE_IMAGE,
            price_per_image="0.05",
            image_prices=[
                pb.ImagePrice(size="1024x1024", quality="standard", price="0.05",
                              checked_on=day(0), source_url=SOURCE),
                pb.ImagePrice(size="2048x2048", quality="standard", price="0.080"),
            ],
            price_sources=[
                pb.PriceSource(price="price_per_image", checked_on=day(-1), source_url=SOURCE)
            ],
        )
    ).model
    fetched = client.get_model(created.id).model
    assert fetched == created
    assert [(p.size, p.price) for p in fetched.image_prices] == [
        ("1024x1024", "0.05"), ("2048x2048", "0.080")]  # exact text kept
    assert fetched.price_sources[0].checked_on == day(-1)
    updated = client.update_model(pb.Model(id=created.id), ["image_prices"]).model
    assert list(updated.image_prices) == []
    change = client.list_changes(page_size=1).changes[0]
    assert list(change.changed_fields.paths) == ["image_prices"]
    assert len(change.before.model.image_prices) == 2
    client.revert_change(change.revision)
    assert client.get_model(created.id).model == created


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (pb.Model(id=1, price_sources=[pb.PriceSource(
            price="input_price_per_1m_tokens", checked_on=day(5), source_url=SOURCE)]),
         "model.price_sources[0].checked_on"),  # in the future
        (pb.Model(id=1, price_sources=[pb.PriceSource(
            price="input_price_per_1m_tokens", checked_on=day(0), source_url="ftp://x/y")]),
         "model.price_sources[0].source_url"),
        (pb.Model(id=1, price_sources=[pb.PriceSource(
            price="price_per_image", checked_on=day(0), source_url=SOURCE)]),
         "model.price_sources[0].price"),  # a text model has no price per image
        (pb.Model(id=1, price_sources=[pb.PriceSource(
            price="discount", checked_on=day(0), source_url=SOURCE)]),
         "model.price_sources[0].price"),
        (pb.Model(id=1, image_prices=[pb.ImagePrice(
            size="1024x1024", quality="hd", price="0.1")]),
         "model.image_prices"),  # a text model
        (pb.Model(id=7, image_prices=[pb.ImagePrice(size="big", quality="hd", price="0.1")]),
         "model.image_prices[0].size"),
        (pb.Model(id=7, image_prices=[
            pb.ImagePrice(size="1024x1024", quality="hd", price="0.1"),
            pb.ImagePrice(size="1024x1024", quality="hd", price="0.2")]),
         "model.image_prices[1]"),
    ],
)
def test_malformed_price_sources_are_invalid_argument(client, model, field):
    before = revision(client)
    mask = ["price_sources"] if model.price_sources else ["image_prices"]
    with pytest.raises(InvalidArgument) as refused:
        client.update_model(model, mask)
    assert refused.value.reason == "INVALID_MODEL"
    assert field in [v.field for v in refused.value.field_violations]
    assert revision(client) == before


# -- RetireModel -------------------------------------------------------------------------------


def test_retire_moves_globals_defaults_and_overrides_in_one_revision(client):
    # gpt-4o-mini (1) is openai_model's global setting and default; two accounts override it.
    import_rows(client, ("acme", "openai_model", 1), ("globex", "openai_model", 1),
                ("initech", "openai_model", 2), ("acme", "dalle_model", 7))
    before = revision(client)
    reply = client.retire_model(1, 13, reason="gpt-5-mini replaces gpt-4o-mini")
    assert reply.revision == before + 1 == revision(client)
    assert (list(reply.global_slots), list(reply.default_slots)) == (
        ["openai_model"], ["openai_model"])
    assert (reply.account_overrides, reply.accounts) == (2, 2)
    assert (reply.model.is_active, reply.model.successor_id) == (False, 13)
    assert reply.successor.id == 13
    assert setting(client, "openai_model").model.id == 13
    assert setting(client, "openai_model").default_model.id == 13
    assert overrides(client) == {
        ("acme", "openai_model"): 13, ("globex", "openai_model"): 13,
        ("initech", "openai_model"): 2, ("acme", "dalle_model"): 7,
    }
    assert resolved(client, "nobody", "openai_model").model.id == 13
    acme = resolved(client, "acme", "openai_model")  # the snapshot moved the override too
    assert (acme.model.id, acme.source, acme.HasField("skipped_override")) == (
        13, pb.SOURCE_ACCOUNT, False)
    change = client.list_changes(page_size=1).changes[0]
    assert change.kind == pb.CHANGE_KIND_MODEL_RETIRED and change.model_id == 1
    assert change.method == "RetireModel" and change.reason == "gpt-5-mini replaces gpt-4o-mini"
    assert (change.before.retirement.model_id, change.after.retirement.model_id) == (1, 13)
    assert list(change.after.retirement.global_slots) == ["openai_model"]
    assert (change.import_rows, change.import_accounts) == (2, 2)
    assert sorted(change.changed_fields.paths) == ["is_active", "successor_id"]
    assert change.before.model.is_active and not change.after.model.is_active


def test_reverting_a_retirement_moves_everything_back(client):
    import_rows(client, ("acme", "openai_model", 1), ("initech", "openai_model", 2))
    etag = client.get_global_settings().etag
    retired = client.retire_model(1, 13)
    reverted = client.revert_change(retired.revision)
    assert reverted.change.kind == pb.CHANGE_KIND_MODEL_RETIRED
    assert reverted.change.reverted_revision == retired.revision
    model = client.get_model(1).model
    assert (model.is_active, model.successor_id) == (True, 0)
    assert setting(client, "openai_model").model.id == 1
    assert setting(client, "openai_model").default_model.id == 1
    assert overrides(client) == {("acme", "openai_model"): 1, ("initech", "openai_model"): 2}
    assert resolved(client, "acme", "openai_model").source == pb.SOURCE_ACCOUNT
    assert client.get_global_settings().etag != etag  # moved twice: a new etag, not the old
    # The revert of the revert retires it again.
    client.revert_change(reverted.revision)
    assert setting(client, "openai_model").model.id == 13
    assert overrides(client)[("acme", "openai_model")] == 13


def test_a_retirement_changed_since_is_not_reverted_unless_forced(client):
    retired = client.retire_model(1, 13)
    client.set_model("openai_model", 9, scope=pb.SCOPE_GLOBAL)
    with pytest.raises(FailedPrecondition) as refused:
        client.revert_change(retired.revision)
    assert refused.value.reason == "CHANGED_SINCE"
    client.revert_change(retired.revision, force=True)
    assert setting(client, "openai_model").model.id == 1


def test_retire_validate_only_reports_and_changes_nothing(client):
    import_rows(client, ("acme", "openai_model", 1))
    before = revision(client)
    reply = client.retire_model(1, 13, validate_only=True)
    assert (reply.account_overrides, list(reply.global_slots)) == (1, ["openai_model"])
    assert reply.revision == before == revision(client)
    assert client.get_model(1).model.is_active
    assert overrides(client) == {("acme", "openai_model"): 1}


@pytest.mark.parametrize(
    ("model", "successor", "error", "reason"),
    [
        (1, 1, InvalidArgument, "SAME_MODEL"),
        (1, 0, InvalidArgument, "INVALID_MODEL_ID"),
        (1, 999, NotFound, "MODEL_NOT_FOUND"),
        (999, 1, NotFound, "MODEL_NOT_FOUND"),
        (1, 4, FailedPrecondition, "SUCCESSOR_MISMATCH"),  # anthropic for openai
        (1, 7, FailedPrecondition, "SUCCESSOR_MISMATCH"),  # an image model for a text one
    ],
)
def test_retire_refusals(client, model, successor, error, reason):
    before = revision(client)
    with pytest.raises(error) as refused:
        client.retire_model(model, successor)
    assert refused.value.reason == reason
    assert revision(client) == before


def test_retiring_to_an_inactive_successor_names_every_slot_involved(client):
    client.create_slot(pb.Slot(name="summary_model", required_provider="openai",
                               required_model_type=pb.MODEL_TYPE_TEXT, default_model_id=1))
    client.update_model(pb.Model(id=13, is_active=False), ["is_active"])
    before = revision(client)
    with pytest.raises(FailedPrecondition) as refused:
        client.retire_model(1, 13)
    assert refused.value.reason == "MODEL_INACTIVE"
    assert refused.value.metadata["slots"] == "openai_model,summary_model"
    assert len(refused.value.violations) == 2
    assert revision(client) == before and client.get_model(1).model.is_active


# -- ListAccounts ------------------------------------------------------------------------------


def test_list_accounts_pages_every_account_with_its_overrides_and_etag(client):
    import_rows(client, *[(f"acct-{i:02}", "openai_model", 2) for i in range(25)],
                ("acct-03", "dalle_model", 7))
    page = client.list_accounts(page_size=10)
    assert [a.account_id for a in page.accounts] == [f"acct-{i:02}" for i in range(10)]
    assert page.next_page_token and page.revision == revision(client)
    every = list(client.iter_accounts(page_size=7))
    assert len(every) == 25
    acct3 = next(a for a in every if a.account_id == "acct-03")
    assert [(o.slot, o.model_id) for o in acct3.overrides] == [
        ("openai_model", 2), ("dalle_model", 7)]  # slot order
    assert acct3.etag == client.resolve_for_account("acct-03").etag
    assert [a.account_id for a in client.iter_accounts(slot="dalle_model")] == ["acct-03"]
    assert [a.account_id for a in client.iter_accounts(model_id=7)] == ["acct-03"]
    assert list(client.iter_accounts(model_id=1)) == []


@pytest.mark.parametrize(
    ("filters", "reason"),
    [
        ({"slot": "nope"}, "UNKNOWN_SLOT"),
        ({"model_id": -1}, "INVALID_MODEL_ID"),
        ({"page_size": -1}, "INVALID_PAGE_SIZE"),
        ({"page_token": "garbage"}, "INVALID_PAGE_TOKEN"),
    ],
)
def test_list_accounts_refusals(client, filters, reason):
    with pytest.raises(InvalidArgument) as refused:
        client.list_accounts(**filters)
    assert refused.value.reason == reason


def test_retiring_again_to_the_same_successor_changes_nothing(client):
    client.retire_model(5, 16)
    before = revision(client)
    reply = client.retire_model(5, 16)
    assert reply.revision == before == revision(client)
    assert reply.account_overrides == 0 and list(reply.global_slots) == []


def test_an_inactive_successor_is_refused_even_when_nothing_uses_the_model(client):
    client.update_model(pb.Model(id=16, is_active=False), ["is_active"])
    with pytest.raises(FailedPrecondition) as refused:
        client.retire_model(5, 16)  # claude-3-haiku: nothing selects it
    assert refused.value.reason == "MODEL_INACTIVE"


def test_reverting_the_retirement_of_an_inactive_model_brings_its_kept_overrides_back(client):
    client.set_model("anthropic_model", 5, account_id="acme")
    client.update_model(pb.Model(id=5, is_active=False), ["is_active"])  # kept, skipped
    retired = client.retire_model(5, 16)
    assert overrides(client) == {("acme", "anthropic_model"): 16}
    client.revert_change(retired.revision)
    assert overrides(client) == {("acme", "anthropic_model"): 5}
    answer = resolved(client, "acme", "anthropic_model")
    assert answer.skipped_override.id == 5 and answer.source == pb.SOURCE_DEFAULT


def test_a_retirement_since_makes_reverting_an_earlier_global_setting_changed_since(client):
    changed = client.set_model("anthropic_model", 5, scope=pb.SCOPE_GLOBAL)
    client.retire_model(5, 16)  # moves the global setting on
    with pytest.raises(FailedPrecondition) as refused:
        client.revert_change(changed.revision)
    assert refused.value.reason == "CHANGED_SINCE"


def test_an_identity_change_must_keep_the_successor_fitting(client):
    created = client.create_model(pb.Model(model_name="o3", provider="openai",
                                           model_type=pb.MODEL_TYPE_TEXT, successor_id=13)).model
    with pytest.raises(FailedPrecondition) as refused:
        client.update_model(pb.Model(id=created.id, provider="azure"), ["provider"])
    assert refused.value.reason == "SUCCESSOR_MISMATCH"


@pytest.mark.parametrize("model_id", [2**53 + 1, 2**63 - 1])
def test_an_absurd_model_id_is_invalid_argument(client, model_id):
    with pytest.raises(InvalidArgument) as refused:
        client.retire_model(model_id, 13)
    assert refused.value.reason == "INVALID_MODEL_ID"
