"""An immutable, versioned picture of everything resolution needs, and the merge rule over it.

A `State` is never changed in place: a committed write produces a new one, so a reader holding a
reference sees exactly one committed revision, whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .model import Model, Slot, Source

_EMPTY: Mapping[str, int] = MappingProxyType({})


def global_etag(global_revision: int) -> str:
    """The etag of the global settings: changes whenever any global setting changes."""
    return f"g{global_revision}"


def account_etag(account_revision: int) -> str:
    """The etag of one account's overrides; `a0` for an account that never had any."""
    return f"a{account_revision}"


@dataclass(frozen=True, slots=True)
class AccountOverrides:
    """One account's overrides (slot name -> model id) and the revision that last changed them."""

    revision: int
    models: Mapping[str, int] = field(default_factory=lambda: _EMPTY)


NO_OVERRIDES = AccountOverrides(0)


@dataclass(frozen=True, slots=True)
class Resolved:
    slot: str
    model: Model
    source: Source


@dataclass(frozen=True)
class Catalog:
    """Models, slots and global settings: small, replaced whole on any catalog or global change."""

    models: Mapping[int, Model]
    slots: Mapping[str, Slot]
    global_models: Mapping[str, int]
    global_revision: int
    by_name: Mapping[str, int] = field(init=False)

    def __post_init__(self) -> None:
        by_name = {name: m.id for m in self.models.values() for name in m.names}
        object.__setattr__(self, "by_name", by_name)

    def find(self, name: str) -> Model | None:
        """The model with this name or alias."""
        model_id = self.by_name.get(name)
        return None if model_id is None else self.models[model_id]

    def global_model(self, slot: str) -> Model | None:
        model_id = self.global_models.get(slot)
        return None if model_id is None else self.models[model_id]

    def resolve_slot(self, slot: Slot, override_id: int | None) -> Resolved:
        """The merge rule: an active account override, else the global setting, else the default."""
        if override_id is not None:
            model = self.models.get(override_id)
            if model is not None and model.is_active:
                return Resolved(slot.name, model, Source.ACCOUNT)
        model = self.global_model(slot.name)
        if model is not None and model.is_active:
            return Resolved(slot.name, model, Source.GLOBAL)
        return Resolved(slot.name, self.models[slot.default_model_id], Source.DEFAULT)


@dataclass(frozen=True)
class State:
    revision: int
    catalog: Catalog
    accounts: Mapping[str, AccountOverrides]

    def overrides(self, account_id: str) -> AccountOverrides:
        return self.accounts.get(account_id, NO_OVERRIDES)

    def resolve(self, account_id: str, slot_names: Iterable[str]) -> list[Resolved]:
        """Resolve the named slots (which must exist) for one account."""
        chosen = self.overrides(account_id).models
        slots = self.catalog.slots
        return [self.catalog.resolve_slot(slots[n], chosen.get(n)) for n in slot_names]
