"""Labels, model validation, the merge rule and the in-use rules: pure domain, no I/O."""

from decimal import Decimal
from types import MappingProxyType

import pytest

from modelconfigd.domain import rules
from modelconfigd.domain.errors import (
    InvalidArgument,
    ModelInactive,
    ModelInUse,
    ModelTypeMismatch,
    ProviderMismatch,
)
from modelconfigd.domain.model import Model, ModelType, Slot, Source
from modelconfigd.domain.state import Accounts, Catalog, State
from modelconfigd.domain.validation import build_model, model_fields

MINI = Model(
    1,
    "gpt-4o-mini",
    "GPT-4o Mini",
    "openai",
    ModelType.TEXT,
    True,
    Decimal("0.15"),
    Decimal("0.60"),
    None,
    128000,
    16384,
)
TURBO = Model(
    3, "gpt-4-turbo", "GPT-4 Turbo", "openai", ModelType.TEXT, True, Decimal("10"), Decimal("30")
)
DALLE = Model(
    7, "dall-e-3", "DALL-E 3", "openai", ModelType.IMAGE, True, price_per_image=Decimal("0.04")
)
HAIKU = Model(5, "claude-3-haiku", "Claude 3 Haiku", "anthropic", ModelType.TEXT, True)
OPENAI = Slot("openai_model", "openai", ModelType.TEXT, default_model_id=1)
ANTHROPIC = Slot("anthropic_model", "anthropic", ModelType.TEXT, default_model_id=5)


def state(globals_=None, overrides=None, models=(MINI, TURBO, DALLE, HAIKU)) -> State:
    slots = (OPENAI, ANTHROPIC)
    catalog = Catalog(
        models=MappingProxyType({m.id: m for m in models}),
        slots=MappingProxyType({s.name: s for s in slots}),
        global_models=MappingProxyType(globals_ or {}),
        global_revision=1,
    )
    records = {
        account: (2, *(chosen.get(s.name) for s in slots))
        for account, chosen in (overrides or {}).items()
    }
    return State(2, catalog, Accounts(records))


def test_labels_match_the_seed_dropdown():
    assert MINI.label == "GPT-4o Mini (gpt-4o-mini) - $0.15/$0.60 per 1M tokens"
    assert DALLE.label == "DALL-E 3 (dall-e-3) - $0.04 per image"
    assert HAIKU.label == "Claude 3 Haiku (claude-3-haiku)"


@pytest.mark.parametrize(
    ("globals_", "overrides", "expected"),
    [
        ({}, {}, ("gpt-4o-mini", Source.DEFAULT)),
        ({"openai_model": 3}, {}, ("gpt-4-turbo", Source.GLOBAL)),
        ({"openai_model": 3}, {"acme": {"openai_model": 1}}, ("gpt-4o-mini", Source.ACCOUNT)),
    ],
)
def test_merge_rule(globals_, overrides, expected):
    [resolved] = state(globals_, overrides).view("acme", ("openai_model",)).slots
    assert (resolved.model.model_name, resolved.source) == expected


def test_inactive_override_is_skipped():
    inactive_turbo = Model(
        **{**{f: getattr(TURBO, f) for f in TURBO.__slots__}, "is_active": False}
    )
    s = state({}, {"acme": {"openai_model": 3}}, models=(MINI, inactive_turbo, DALLE, HAIKU))
    [resolved] = s.view("acme", ("openai_model",)).slots
    assert resolved.source is Source.DEFAULT


@pytest.mark.parametrize(
    ("slot", "model", "error"),
    [(OPENAI, HAIKU, ProviderMismatch), (OPENAI, DALLE, ModelTypeMismatch)],
)
def test_slot_refuses_wrong_provider_or_type(slot, model, error):
    with pytest.raises(error):
        rules.check_fits(slot, model)


def test_slot_refuses_inactive_model():
    inactive = build_model(9, {**model_fields(TURBO), "is_active": False})
    with pytest.raises(ModelInactive):
        rules.check_fits(OPENAI, inactive)


def test_deactivation_ignores_overrides_but_deletion_does_not():
    only_overrides = rules.Usage((), (), 2, ("a", "b"))
    off = build_model(3, {**model_fields(TURBO), "is_active": False})
    rules.check_update_allowed(TURBO, off, only_overrides)
    with pytest.raises(ModelInUse):
        rules.check_deletable(TURBO, only_overrides)


def test_build_model_reports_every_bad_field_at_once():
    fields = {
        **model_fields(MINI),
        "provider": "",
        "input_price_per_1m_tokens": "-2",
        "price_per_image": "1",
    }
    with pytest.raises(InvalidArgument) as err:
        build_model(1, fields)
    assert [v.field for v in err.value.violations] == [
        "model.provider",
        "model.input_price_per_1m_tokens",
        "model.price_per_image",
    ]


def test_model_fields_round_trip():
    assert build_model(1, model_fields(MINI)) == MINI


def test_accounts_share_the_base_between_versions_and_fold_recent_changes():
    base = Accounts({"a": (1, 1, None)})
    one = base.updated({"b": (2, None, 5)})
    assert (base.get("b"), one.get("b"), one.get("a")) == (None, (2, None, 5), (1, 1, None))
    many = one
    for i in range(Accounts.MAX_RECENT + 1):
        many = many.updated({f"x{i}": (3 + i, 1, 1)})
    assert many.get("b") == (2, None, 5) and many.get("x0") == (3, 1, 1)
    assert len(many) == Accounts.MAX_RECENT + 3
    assert one.get("x0") is None  # older versions never see later changes


def test_views_are_shared_by_accounts_that_resolve_alike():
    s = state({}, {"a": {"openai_model": 3}, "b": {"openai_model": 3}})
    assert s.view("a", ("openai_model",)) is s.view("b", ("openai_model",))
    assert s.view("a", ("openai_model",)) is not s.view("c", ("openai_model",))
