"""An immutable, versioned picture of everything resolution needs, and the merge rule over it.

A `State` is never changed in place: a committed write produces a new one, so a reader holding a
reference sees exactly one committed revision, whole. Overrides are kept compact for millions of
accounts: one tuple per account, `(revision, model id or None for each slot in slot order)`,
equal tuples shared, in a large base dictionary that successive States share plus a small
dictionary of recent changes, so a write costs O(1) instead of copying every account.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from .model import Model, Slot, Source

# (revision that last changed the account's overrides, model id or None per slot)
AccountRecord = tuple[int | None, ...]


def utc_today() -> date:
    """The day deprecation dates are compared with: the same for every daemon, wherever it runs."""
    return datetime.now(UTC).date()


def global_etag(global_revision: int) -> str:
    """The etag of the global settings: changes whenever any global setting changes."""
    return f"g{global_revision}"


def account_etag(account_revision: int) -> str:
    """The etag of one account's overrides; `a0` for an account that never had any."""
    return f"a{account_revision}"


@dataclass(frozen=True, slots=True)
class Resolved:
    slot: str
    model: Model
    source: Source
    # The account's override, when resolution skipped it because its model is inactive.
    skipped_override: Model | None = None
    # The model's deprecation date is reached.
    deprecated: bool = False


@dataclass(frozen=True, eq=False)
class ResolvedView:
    """One account's resolution of some slots in one State; shared by accounts that resolve alike.

    Compared by identity, so it can key caches of derived values (e.g. encoded responses).
    """

    slots: tuple[Resolved, ...]
    etag: str


@dataclass(frozen=True)
class Catalog:
    """Models, slots and global settings: small, replaced whole on any catalog or global change."""

    models: Mapping[int, Model]
    slots: Mapping[str, Slot]
    global_models: Mapping[str, int]
    global_revision: int
    by_name: Mapping[str, int] = field(init=False)
    slot_index: Mapping[str, int] = field(init=False)

    def __post_init__(self) -> None:
        by_name = {name: m.id for m in self.models.values() for name in m.names}
        object.__setattr__(self, "by_name", by_name)
        object.__setattr__(self, "slot_index", {name: i for i, name in enumerate(self.slots)})

    def find(self, name: str) -> Model | None:
        """The model with this name or alias."""
        model_id = self.by_name.get(name)
        return None if model_id is None else self.models[model_id]

    def global_model(self, slot: str) -> Model | None:
        model_id = self.global_models.get(slot)
        return None if model_id is None else self.models[model_id]

    def resolve_slot(self, slot: Slot, override_id: int | None, today: date) -> Resolved:
        """The merge rule: an active account override, else the global setting, else the default;
        marked deprecated when the model's deprecation date is reached `today`."""
        skipped = None
        if override_id is not None:
            model = self.models.get(override_id)
            if model is not None and model.is_active:
                return Resolved(slot.name, model, Source.ACCOUNT, None, model.deprecated_on(today))
            skipped = model
        model = self.global_model(slot.name)
        source = Source.GLOBAL
        if model is None or not model.is_active:
            model, source = self.models[slot.default_model_id], Source.DEFAULT
        return Resolved(slot.name, model, source, skipped, model.deprecated_on(today))


class Accounts:
    """account id -> AccountRecord, immutable; `updated` shares the large base between versions."""

    __slots__ = ("_base", "_recent")
    # How many changed accounts ride along before they are folded into a new base dictionary:
    # folding copies every account, so it runs once per this many changes.
    MAX_RECENT = 4096

    def __init__(
        self, base: dict[str, AccountRecord], recent: dict[str, AccountRecord] | None = None
    ) -> None:
        self._base = base
        self._recent = recent or {}

    def get(self, account_id: str) -> AccountRecord | None:
        record = self._recent.get(account_id)
        return self._base.get(account_id) if record is None else record

    def __len__(self) -> int:
        return len(self._base) + sum(1 for a in self._recent if a not in self._base)

    def items(self) -> Iterator[tuple[str, AccountRecord]]:
        """Every account with its record, each once."""
        recent = self._recent
        yield from recent.items()
        yield from ((a, r) for a, r in self._base.items() if a not in recent)

    def updated(self, changes: Mapping[str, AccountRecord]) -> Accounts:
        if not changes:
            return self
        recent = {**self._recent, **changes}
        if len(recent) > self.MAX_RECENT:
            return Accounts({**self._base, **recent})
        return Accounts(self._base, recent)


class State:
    """One committed revision: catalog, account overrides, and the views resolved from them."""

    __slots__ = ("_no_overrides", "_views", "_views_lock", "accounts", "all_slots", "catalog",
                 "revision", "today")
    # Views are shared by every account with the same overrides, so there are few; the bound
    # only guards against pathological request mixes.
    MAX_VIEWS = 100_000

    def __init__(
        self, revision: int, catalog: Catalog, accounts: Accounts, today: date | None = None
    ) -> None:
        self.revision = revision
        self.catalog = catalog
        self.accounts = accounts
        # Resolution marks models deprecated as of this day (UTC); a new day means a new State.
        self.today = today or utc_today()
        self.all_slots = tuple(catalog.slots)
        self._no_overrides: AccountRecord = (0,) + (None,) * len(catalog.slots)
        self._views: dict[tuple[AccountRecord, tuple[str, ...]], ResolvedView] = {}
        self._views_lock = threading.Lock()

    def on(self, day: date) -> State:
        """The same revision, resolved as of another day."""
        return State(self.revision, self.catalog, self.accounts, day)

    def view(self, account_id: str, slot_names: tuple[str, ...]) -> ResolvedView:
        """Resolve the named slots (which must exist) for one account."""
        record = self.accounts.get(account_id) or self._no_overrides
        key = (record, slot_names)
        view = self._views.get(key)  # the hot path: a hit costs one dictionary look-up
        if view is None:
            built = self._build_view(record, slot_names)
            with self._views_lock:
                if len(self._views) >= self.MAX_VIEWS:
                    self._views.clear()
                view = self._views.setdefault(key, built)
        return view

    def _build_view(self, record: AccountRecord, slot_names: tuple[str, ...]) -> ResolvedView:
        catalog = self.catalog
        index = catalog.slot_index
        # Records loaded before a slot was created are shorter: they have no override of it.
        width = len(record)
        resolved = tuple(
            catalog.resolve_slot(
                catalog.slots[name],
                record[1 + index[name]] if 1 + index[name] < width else None,
                self.today,
            )
            for name in slot_names
        )
        return ResolvedView(resolved, account_etag(record[0] or 0))
