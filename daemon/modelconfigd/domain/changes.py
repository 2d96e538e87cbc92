"""Recorded changes: what one committed write changed, who made it, and through which call.

A use case describes its change with one of the constructors below and hands it to the unit of
work's `commit`, which gives it the next revision and stores it in the same transaction as the
change itself. `before` and `after` hold exactly what changed, as JSON-safe values: a model id
(None for none) for settings, the changed fields for models and slots.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from .access import Role
from .model import ImagePrice, Model, ModelType, PriceSource, Slot
from .prices import parse_price, price_text

Values = Mapping[str, Any]


class ChangeKind(enum.Enum):
    SEED = "seed"
    MODEL_CREATED = "model_created"
    MODEL_UPDATED = "model_updated"
    MODEL_DELETED = "model_deleted"
    SLOT_CREATED = "slot_created"
    SLOT_UPDATED = "slot_updated"
    SETTING = "setting"
    IMPORT = "import"
    MODEL_RETIRED = "model_retired"
    CONFIGURATION_APPLIED = "configuration_applied"
    # A catalog change recorded by schema 1, before the audit trail: its details were not kept.
    CATALOG = "catalog"


class Scope(enum.Enum):
    GLOBAL = "global"
    ACCOUNT = "account"


@dataclass(frozen=True)
class Origin:
    """Who asked for a write and how: kept with the change it makes (all but the role)."""

    actor: str = "local"
    method: str = ""
    request_id: str = ""
    reason: str = ""
    role: Role = Role.ADMIN


LOCAL = Origin()  # the daemon itself, or a caller in the same process


@dataclass(frozen=True)
class Change:
    """One change; `revision` and `time` are set when it commits.

    `models` and `slots` name everything the change concerns, so the trail can be searched by
    them (an import's distinct models and slots, a setting's old and new model, ...).
    """

    kind: ChangeKind
    scope: Scope | None = None
    slot: str = ""
    account_id: str = ""
    model_id: int = 0
    # None: not recorded (imports, the seed, changes from before the audit trail).
    before: Values | None = None
    after: Values | None = None
    reverted_revision: int = 0
    models: frozenset[int] = frozenset()
    slots: frozenset[str] = frozenset()
    origin: Origin = field(default_factory=Origin)
    revision: int = 0
    time: datetime | None = None

    @property
    def changes_catalog(self) -> bool:
        """Whether a replica must reload the catalog (models, slots, global settings)."""
        return self.kind not in (ChangeKind.SETTING, ChangeKind.IMPORT) or (
            self.scope is Scope.GLOBAL
        )

    @property
    def changes_accounts(self) -> bool:
        """Whether a replica must reload the accounts changed at this revision. Decided by kind
        and scope alone: replicas read only those of the changes they catch up with."""
        return self.writes_overrides or self.scope is Scope.ACCOUNT

    @property
    def writes_overrides(self) -> bool:
        """Whether the change's overrides are kept beside it (an import, a retirement)."""
        return self.kind in (
            ChangeKind.IMPORT,
            ChangeKind.MODEL_RETIRED,
            ChangeKind.CONFIGURATION_APPLIED,
        )

    @property
    def changes_global_settings(self) -> bool:
        """Whether the global settings' etag moves: a global setting or a slot changed."""
        if self.kind is ChangeKind.MODEL_RETIRED:
            moved = self.after or {}
            return bool(moved.get("global_slots") or moved.get("default_slots"))
        if self.kind is ChangeKind.CONFIGURATION_APPLIED:
            done = self.after or {}
            names = ("slots_created", "slots_updated", "global_settings_changed")
            return any(done.get(name) for name in names)
        return self.scope is Scope.GLOBAL or self.kind in (
            ChangeKind.SLOT_CREATED,
            ChangeKind.SLOT_UPDATED,
        )

    @property
    def changed_fields(self) -> tuple[str, ...]:
        """The fields `before` and `after` hold, in their order (a retirement: the model's)."""
        before, after = self.before or {}, self.after or {}
        if self.kind is ChangeKind.MODEL_RETIRED:
            before, after = before.get("model", {}), after.get("model", {})
        return tuple(dict.fromkeys([*before, *after]))

    def reverting(self, revision: int) -> Change:
        return replace(self, reverted_revision=revision)

    def summary(self) -> str:
        """What the change did, in a line: `account acme openai_model: 1 -> 2`."""
        reverts = f" (reverts {self.reverted_revision})" if self.reverted_revision else ""
        if self.kind is ChangeKind.SETTING and self.before is not None and self.after is not None:
            where = f"account {self.account_id}" if self.account_id else "global"
            model = {None: "none"}
            before = model.get(self.before["model_id"], self.before["model_id"])
            after = model.get(self.after["model_id"], self.after["model_id"])
            return f"{where} {self.slot}: {before} -> {after}{reverts}"
        if self.kind is ChangeKind.IMPORT and self.after:
            return (
                f"{self.after['rows']} overrides of {self.after['accounts']} accounts{reverts}"
            )
        if self.kind is ChangeKind.CONFIGURATION_APPLIED and self.after:
            done = ", ".join(
                f"{name} {values}" for name, values in self.after.items() if values
            )
            return f"configuration applied: {done or 'nothing'}{reverts}"
        if self.kind is ChangeKind.MODEL_RETIRED and self.before and self.after:
            return (
                f"model {self.before['model_id']} -> {self.after['model_id']}: globals "
                f"{self.after['global_slots']}, defaults {self.after['default_slots']}, "
                f"{self.after['rows']} overrides{reverts}"
            )
        subject = f"model {self.model_id}" if self.model_id else f"slot {self.slot}"
        fields = ", ".join(
            f"{name}: {(self.before or {}).get(name)!r} -> {(self.after or {}).get(name)!r}"
            for name in self.changed_fields
        )
        return f"{self.kind.value} {subject}: {fields}{reverts}"


# -- settings ----------------------------------------------------------------------------------


def setting_changed(
    scope: Scope, slot: str, account_id: str, before: int | None, after: int | None
) -> Change:
    """A global setting or an account override set (after), replaced or cleared (None)."""
    return Change(
        ChangeKind.SETTING,
        scope=scope,
        slot=slot,
        account_id=account_id,
        before={"model_id": before},
        after={"model_id": after},
        models=frozenset(m for m in (before, after) if m is not None),
        slots=frozenset([slot]),
    )


def imported(rows: int, accounts: int, models: frozenset[int], slots: frozenset[str]) -> Change:
    """Many overrides changed at once; the rows themselves are kept beside the change."""
    return Change(
        ChangeKind.IMPORT,
        scope=Scope.ACCOUNT,
        after={"rows": rows, "accounts": accounts},
        models=models,
        slots=slots,
    )


@dataclass(frozen=True)
class Moved:
    """The settings a retirement (or its revert) moved from one model to another."""

    from_model: int
    to_model: int
    global_slots: tuple[str, ...]
    default_slots: tuple[str, ...]
    override_rows: int = 0
    override_accounts: int = 0
    override_slots: frozenset[str] = frozenset()


def model_retired(old: Model, new: Model, moved: Moved) -> Change:
    """A model's settings moved to another model in one change, and the model itself changed
    (`old` -> `new`: deactivated and naming its successor, or the reverse on a revert).

    The overrides moved are kept beside the change, like an import's.
    """
    before, after = _difference(model_values(old), model_values(new))
    slots = {"global_slots": list(moved.global_slots), "default_slots": list(moved.default_slots)}
    return Change(
        ChangeKind.MODEL_RETIRED,
        model_id=old.id,
        before={"model": before, "model_id": moved.from_model, **slots},
        after={
            "model": after,
            "model_id": moved.to_model,
            **slots,
            "rows": moved.override_rows,
            "accounts": moved.override_accounts,
        },
        models=frozenset([old.id, moved.from_model, moved.to_model]),
        slots=frozenset([*moved.global_slots, *moved.default_slots]) | moved.override_slots,
    )


def configuration_applied(
    summary: Mapping[str, list[Any]], rows: int, accounts: int, override_slots: frozenset[str]
) -> Change:
    """A whole configuration applied: what it changed; its overrides are kept beside it."""
    models = {
        i for name in ("models_created", "models_updated", "models_deleted") for i in summary[name]
    }
    slots = {
        s
        for name in ("slots_created", "slots_updated", "global_settings_changed")
        for s in summary[name]
    }
    return Change(
        ChangeKind.CONFIGURATION_APPLIED,
        after={**summary, "rows": rows, "accounts": accounts},
        models=frozenset(models),
        slots=frozenset(slots) | override_slots,
    )


# -- models ------------------------------------------------------------------------------------


def model_values(model: Model) -> dict[str, Any]:
    """Every writable field of a model as JSON-safe values (prices as exact text)."""
    return {
        "model_name": model.model_name,
        "display_name": model.display_name,
        "provider": model.provider,
        "model_type": model.model_type.value,
        "is_active": model.is_active,
        "input_price_per_1m_tokens": price_text(model.input_price_per_1m_tokens),
        "cached_input_price_per_1m_tokens": price_text(model.cached_input_price_per_1m_tokens),
        "output_price_per_1m_tokens": price_text(model.output_price_per_1m_tokens),
        "price_per_image": price_text(model.price_per_image),
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "aliases": list(model.aliases),
        "image_prices": [
            {
                "size": p.size,
                "quality": p.quality,
                "price": price_text(p.price),
                "checked_on": p.checked_on.isoformat() if p.checked_on else "",
                "source_url": p.source_url,
            }
            for p in model.image_prices
        ],
        "price_sources": [
            {"price": s.price, "checked_on": s.checked_on.isoformat(), "source_url": s.source_url}
            for s in model.price_sources
        ],
        "deprecation_date": model.deprecation_date.isoformat() if model.deprecation_date else "",
        "successor_id": model.successor_id,
    }


def image_prices_from_values(entries: Iterable[Values]) -> tuple[ImagePrice, ...]:
    """Image prices from their JSON-safe values (model_values' `image_prices`)."""
    return tuple(
        ImagePrice(
            e["size"],
            e["quality"],
            Decimal(e["price"]),
            date.fromisoformat(e["checked_on"]) if e["checked_on"] else None,
            e["source_url"],
        )
        for e in entries
    )


def price_sources_from_values(entries: Iterable[Values]) -> tuple[PriceSource, ...]:
    """Price sources from their JSON-safe values (model_values' `price_sources`)."""
    return tuple(
        PriceSource(e["price"], date.fromisoformat(e["checked_on"]), e["source_url"])
        for e in entries
    )


def model_from_values(model_id: int, values: Values) -> Model:
    """The inverse of model_values (for a model that existed, so every value is valid)."""
    return Model(
        id=model_id,
        model_name=values["model_name"],
        display_name=values["display_name"],
        provider=values["provider"],
        model_type=ModelType(values["model_type"]),
        is_active=values["is_active"],
        input_price_per_1m_tokens=parse_price(values["input_price_per_1m_tokens"]),
        # Recorded before the field existed: no such price.
        cached_input_price_per_1m_tokens=parse_price(
            values.get("cached_input_price_per_1m_tokens", "")
        ),
        output_price_per_1m_tokens=parse_price(values["output_price_per_1m_tokens"]),
        price_per_image=parse_price(values["price_per_image"]),
        context_window=values["context_window"],
        max_output_tokens=values["max_output_tokens"],
        aliases=tuple(values["aliases"]),
        # The lifecycle and sourced prices were added later: changes recorded before lack them.
        image_prices=image_prices_from_values(values.get("image_prices", ())),
        price_sources=price_sources_from_values(values.get("price_sources", ())),
        deprecation_date=(
            date.fromisoformat(values["deprecation_date"])
            if values.get("deprecation_date")
            else None
        ),
        successor_id=values.get("successor_id"),
    )


def _difference(old: Values, new: Values) -> tuple[dict[str, Any], dict[str, Any]]:
    changed = [name for name in new if old.get(name) != new[name]]
    return {n: old[n] for n in changed}, {n: new[n] for n in changed}


def model_created(model: Model) -> Change:
    return Change(
        ChangeKind.MODEL_CREATED,
        model_id=model.id,
        before={},
        after=model_values(model),
        models=frozenset([model.id]),
    )


def model_updated(old: Model, new: Model) -> Change:
    before, after = _difference(model_values(old), model_values(new))
    return Change(
        ChangeKind.MODEL_UPDATED,
        model_id=old.id,
        before=before,
        after=after,
        models=frozenset([old.id]),
    )


def model_deleted(model: Model) -> Change:
    return Change(
        ChangeKind.MODEL_DELETED,
        model_id=model.id,
        before=model_values(model),
        after={},
        models=frozenset([model.id]),
    )


# -- slots -------------------------------------------------------------------------------------


def slot_values(slot: Slot) -> dict[str, Any]:
    return {
        "display_name": slot.display_name,
        "required_provider": slot.required_provider,
        "required_model_type": slot.required_model_type.value,
        "default_model_id": slot.default_model_id,
    }


def slot_from_values(name: str, values: Values) -> Slot:
    return Slot(
        name=name,
        display_name=values["display_name"],
        required_provider=values["required_provider"],
        required_model_type=ModelType(values["required_model_type"]),
        default_model_id=values["default_model_id"],
    )


def slot_created(slot: Slot) -> Change:
    return Change(
        ChangeKind.SLOT_CREATED,
        slot=slot.name,
        before={},
        after=slot_values(slot),
        models=frozenset([slot.default_model_id]),
        slots=frozenset([slot.name]),
    )


def slot_updated(old: Slot, new: Slot) -> Change:
    before, after = _difference(slot_values(old), slot_values(new))
    defaults = {old.default_model_id, new.default_model_id}
    return Change(
        ChangeKind.SLOT_UPDATED,
        slot=old.name,
        before=before,
        after=after,
        models=frozenset(defaults) if "default_model_id" in after else frozenset(),
        slots=frozenset([old.name]),
    )


@dataclass(frozen=True)
class ChangeFilter:
    """What ListChanges narrows the trail to; every set criterion must hold."""

    model_id: int = 0
    slot: str = ""
    account_id: str = ""
    actor: str = ""
    start_time: datetime | None = None  # inclusive
    end_time: datetime | None = None  # exclusive
    min_revision: int = 0
    max_revision: int = 0  # 0: no upper bound

    def key(self) -> tuple[object, ...]:
        """The filter as a value, for binding page tokens to it."""
        return (
            self.model_id,
            self.slot,
            self.account_id,
            self.actor,
            self.start_time and self.start_time.isoformat(),
            self.end_time and self.end_time.isoformat(),
            self.min_revision,
            self.max_revision,
        )
