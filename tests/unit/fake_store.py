"""An in-memory Store for unit tests of the use cases (service_layer/unit_of_work.py).

A unit works on a copy of the data and replaces the store's data with it on `commit`; leaving
without committing discards it, as a rolled-back transaction would. It keeps the same history
the Peewee store keeps, so reverts can be tested without a database. The tests over a real
database and a real port (tests/e2e) remain what shows the store itself is right.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType

from modelconfigd.adapters.migrations import load_seed
from modelconfigd.domain.changes import Change, ChangeFilter, ChangeKind, Origin, Scope
from modelconfigd.domain.model import Model, ModelType, Slot
from modelconfigd.domain.prices import parse_price
from modelconfigd.domain.rules import Usage
from modelconfigd.domain.state import Catalog
from modelconfigd.service_layer.unit_of_work import (
    AccountOverrides,
    Applied,
    OverrideHistoryRow,
    OverrideRow,
)


@dataclass
class Data:
    models: dict[int, Model] = field(default_factory=dict)
    slots: dict[str, Slot] = field(default_factory=dict)  # in slot order
    globals: dict[str, int] = field(default_factory=dict)
    overrides: dict[tuple[str, str], int] = field(default_factory=dict)
    account_revisions: dict[str, int] = field(default_factory=dict)
    # (revision, account, slot, before, after)
    history: list[tuple[int, str, str, int | None, int | None]] = field(default_factory=list)
    changes: dict[int, Change] = field(default_factory=dict)
    revision: int = 0
    global_revision: int = 0
    next_model_id: int = 1


def seeded() -> Data:
    seed = load_seed()
    data = Data()
    for m in seed["models"]:
        data.models[m["id"]] = Model(
            id=m["id"],
            model_name=m["model_name"],
            display_name=m.get("display_name") or m["model_name"],
            provider=m["provider"],
            model_type=ModelType(m["model_type"]),
            is_active=m.get("is_active", True),
            input_price_per_1m_tokens=parse_price(m.get("input_price_per_1m_tokens", "")),
            cached_input_price_per_1m_tokens=parse_price(
                m.get("cached_input_price_per_1m_tokens", "")
            ),
            output_price_per_1m_tokens=parse_price(m.get("output_price_per_1m_tokens", "")),
            price_per_image=parse_price(m.get("price_per_image", "")),
            context_window=m.get("context_window", 0),
            max_output_tokens=m.get("max_output_tokens", 0),
            aliases=tuple(m.get("aliases", ())),
        )
    ids = {m.model_name: m.id for m in data.models.values()}
    for s in seed["slots"]:
        data.slots[s["name"]] = Slot(
            name=s["name"],
            display_name=s.get("display_name") or s["name"],
            required_provider=s["required_provider"],
            required_model_type=ModelType(s["required_model_type"]),
            default_model_id=ids[s["default_model"]],
        )
    data.globals = dict(seed["global_settings"])
    data.revision = data.global_revision = 1
    data.next_model_id = max(ids.values()) + 1
    data.changes[1] = Change(
        ChangeKind.SEED,
        models=frozenset(data.models),
        slots=frozenset(data.slots),
        revision=1,
        time=datetime.now(UTC),
        origin=Origin("local"),
    )
    return data


class FakeModels:
    def __init__(self, unit: FakeUnit) -> None:
        self._unit = unit

    @property
    def _data(self) -> Data:
        return self._unit.data

    def get(self, model_id: int) -> Model | None:
        return self._data.models.get(model_id)

    def find(self, name: str) -> Model | None:
        return next((m for m in self._data.models.values() if name in m.names), None)

    def names_taken(self, names: Iterable[str], except_model: int | None) -> dict[str, int]:
        wanted = set(names)
        return {
            n: m.id
            for m in self._data.models.values()
            if m.id != except_model
            for n in m.names
            if n in wanted
        }

    def add(self, model: Model) -> Model:
        if not model.id:
            model = replace(model, id=self._data.next_model_id)
        self._data.next_model_id = max(self._data.next_model_id, model.id + 1)
        assert model.id not in self._data.models
        self._data.models[model.id] = model
        return model

    def update(self, model: Model) -> None:
        self._data.models[model.id] = model

    def delete(self, model_id: int) -> None:
        data = self._data
        held = (
            model_id in data.globals.values()
            or model_id in data.overrides.values()
            or any(s.default_model_id == model_id for s in data.slots.values())
        )
        assert not held, "the database would refuse this (RESTRICT)"
        del data.models[model_id]

    def usage(self, model_id: int, sample: int) -> Usage:
        data = self._data
        accounts = sorted({a for (a, _), m in data.overrides.items() if m == model_id})
        return Usage(
            global_slots=tuple(sorted(s for s, m in data.globals.items() if m == model_id)),
            default_slots=tuple(
                sorted(s.name for s in data.slots.values() if s.default_model_id == model_id)
            ),
            account_override_count=sum(1 for m in data.overrides.values() if m == model_id),
            account_ids=tuple(accounts[:sample]),
        )


class FakeSlots:
    def __init__(self, unit: FakeUnit) -> None:
        self._unit = unit

    def get(self, name: str) -> Slot | None:
        return self._unit.data.slots.get(name)

    def names(self) -> list[str]:
        return list(self._unit.data.slots)

    def add(self, slot: Slot) -> None:
        self._unit.data.slots[slot.name] = slot

    def update(self, slot: Slot) -> None:
        self._unit.data.slots[slot.name] = slot

    def holders(self, name: str) -> list[str]:
        data = self._unit.data
        found = ["its global setting"] if name in data.globals else []
        if any(slot == name for _, slot in data.overrides):
            found.append("account overrides")
        return found


class FakeGlobalSettings:
    def __init__(self, unit: FakeUnit) -> None:
        self._unit = unit

    def get(self, slot: str) -> int | None:
        return self._unit.data.globals.get(slot)

    def set(self, slot: str, model_id: int | None) -> None:
        if model_id is None:
            self._unit.data.globals.pop(slot, None)
        else:
            self._unit.data.globals[slot] = model_id


class FakeOverrides:
    def __init__(self, unit: FakeUnit) -> None:
        self._unit = unit

    def get(self, account_id: str, slot: str) -> int | None:
        return self._unit.data.overrides.get((account_id, slot))

    def account_revision(self, account_id: str) -> int:
        return self._unit.data.account_revisions.get(account_id, 0)

    def set(self, account_id: str, slot: str, model_id: int | None) -> None:
        self.apply([(account_id, slot, model_id)])

    def apply(self, rows: Sequence[OverrideRow]) -> Applied:
        data, revision = self._unit.data, self._unit.next_revision
        changed = [
            (account, slot, data.overrides.get((account, slot)), model)
            for account, slot, model in rows
            if data.overrides.get((account, slot)) != model
        ]
        for account, slot, before, after in changed:
            if after is None:
                del data.overrides[account, slot]
            else:
                data.overrides[account, slot] = after
            data.account_revisions[account] = revision
            data.history.append((revision, account, slot, before, after))
        return Applied(
            rows=len(changed),
            accounts=len({account for account, *_ in changed}),
            models=frozenset(m for *_, b, a in changed for m in (b, a) if m is not None),
            slots=frozenset(slot for _, slot, *_ in changed),
        )

    def history(self, revision: int) -> Iterator[OverrideHistoryRow]:
        rows = sorted(h for h in self._unit.data.history if h[0] == revision)
        return iter(OverrideHistoryRow(*h[1:]) for h in rows)

    def history_page(
        self, revision: int, after: tuple[str, str] | None, limit: int
    ) -> list[OverrideHistoryRow]:
        rows = self.history(revision)
        return [r for r in rows if after is None or (r.account_id, r.slot) > after][:limit]

    def changed_after(self, revision: int) -> int | None:
        touched = {(a, s) for r, a, s, *_ in self._unit.data.history if r == revision}
        later = [r for r, a, s, *_ in self._unit.data.history if r > revision and (a, s) in touched]
        return max(later, default=None)

    def last_change(self, account_id: str, slot: str, after: int) -> int | None:
        later = [
            r
            for r, a, s, *_ in self._unit.data.history
            if r > after and (a, s) == (account_id, slot)
        ]
        return max(later, default=None)

    def accounts_using(self, model_id: int, after: str, limit: int) -> list[str]:
        data = self._unit.data
        using = {a for (a, _), m in data.overrides.items() if m == model_id and a > after}
        return sorted(using)[:limit]

    def pairs(self) -> set[tuple[str, str]]:
        return set(self._unit.data.overrides)

    def choices(self) -> set[tuple[str, int]]:
        return {(slot, m) for (_, slot), m in self._unit.data.overrides.items()}

    def selecting(self, model_id: int) -> list[tuple[str, str]]:
        return sorted(key for key, m in self._unit.data.overrides.items() if m == model_id)

    def accounts_page(
        self, slot: str, model_id: int, after: str, limit: int
    ) -> list[AccountOverrides]:
        data = self._unit.data
        matching = sorted(
            {
                a
                for (a, s), m in data.overrides.items()
                if a > after and (not slot or s == slot) and (not model_id or m == model_id)
            }
        )[:limit]
        return [
            AccountOverrides(
                a,
                tuple(sorted((s, m) for (o, s), m in data.overrides.items() if o == a)),
                data.account_revisions.get(a, 0),
            )
            for a in matching
        ]


class FakeChangeLog:
    def __init__(self, unit: FakeUnit) -> None:
        self._unit = unit

    def get(self, revision: int) -> Change | None:
        return self._unit.data.changes.get(revision)

    def last_change(
        self,
        after: int,
        kinds: Iterable[ChangeKind],
        *,
        scope: Scope | None = None,
        slot: str = "",
        model_id: int = 0,
    ) -> int | None:
        kinds = set(kinds)
        found = [
            c.revision
            for c in self._unit.data.changes.values()
            if c.revision > after
            and c.kind in kinds
            and (scope is None or c.scope is scope)
            and (not slot or c.slot == slot)
            and (not model_id or c.model_id == model_id)
        ]
        return max(found, default=None)

    def last_about(
        self, after: int, kinds: Iterable[ChangeKind], subjects: Iterable[str]
    ) -> int | None:
        kinds, subjects = set(kinds), set(subjects)
        found = [
            c.revision
            for c in self._unit.data.changes.values()
            if c.revision > after
            and c.kind in kinds
            and subjects & ({f"model:{m}" for m in c.models} | {f"slot:{s}" for s in c.slots})
        ]
        return max(found, default=None)

    def page(self, where: ChangeFilter, before: int, limit: int) -> list[Change]:
        accounts = {r for r, a, *_ in self._unit.data.history if a == where.account_id}
        found = [
            c
            for c in sorted(self._unit.data.changes.values(), key=lambda c: -c.revision)
            if (not before or c.revision < before)
            and (not where.model_id or where.model_id in c.models)
            and (not where.slot or where.slot in c.slots)
            and (not where.account_id or c.revision in accounts)
            and (not where.actor or c.origin.actor == where.actor)
            and (where.start_time is None or c.time >= where.start_time)
            and (where.end_time is None or c.time < where.end_time)
            and (where.min_revision <= c.revision)
            and (not where.max_revision or c.revision <= where.max_revision)
        ]
        return found[:limit]

    def between(self, after: int, upto: int, limit: int) -> list[Change]:
        return [c for c in self.since(after) if c.revision <= upto][:limit]

    def first_at(self, moment: datetime) -> int | None:
        later = [c.revision for c in self._unit.data.changes.values() if c.time >= moment]
        return min(later, default=None)

    def since(self, revision: int) -> list[Change]:
        return sorted(
            (c for c in self._unit.data.changes.values() if c.revision > revision),
            key=lambda c: c.revision,
        )


class FakeUnit:
    def __init__(self, store: FakeStore, origin: Origin | None) -> None:
        self._store = store
        self._origin = origin
        self.models = FakeModels(self)
        self.slots = FakeSlots(self)
        self.settings = FakeGlobalSettings(self)
        self.overrides = FakeOverrides(self)
        self.changes = FakeChangeLog(self)

    def __enter__(self) -> FakeUnit:
        if self._origin is not None:
            self._store.lock.acquire()
        self.data = copy.deepcopy(self._store.data)
        self.committed: Change | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._origin is not None:
            self._store.lock.release()

    @property
    def revision(self) -> int:
        return self.data.revision

    @property
    def global_revision(self) -> int:
        return self.data.global_revision

    @property
    def next_revision(self) -> int:
        return self.data.revision + 1

    def commit(self, change: Change) -> Change:
        assert self._origin is not None and self.committed is None
        recorded = replace(
            change, revision=self.next_revision, time=datetime.now(UTC), origin=self._origin
        )
        self.data.revision = recorded.revision
        if recorded.changes_global_settings:
            self.data.global_revision = recorded.revision
        self.data.changes[recorded.revision] = recorded
        self._store.data = self.data
        self._store.commits += 1
        self.committed = recorded
        return recorded

    def catalog(self) -> Catalog:
        data = self.data
        return Catalog(
            models=MappingProxyType(dict(sorted(data.models.items()))),
            slots=MappingProxyType(dict(data.slots)),
            global_models=MappingProxyType(dict(data.globals)),
            global_revision=data.global_revision,
        )

    def accounts(
        self, slots: Sequence[str], changed_after: int | None = None
    ) -> dict[str, tuple[int | None, ...]]:
        data = self.data
        return {
            account: (revision, *(data.overrides.get((account, s)) for s in slots))
            for account, revision in data.account_revisions.items()
            if changed_after is None or revision > changed_after
        }


class FakeStore:
    def __init__(self, data: Data | None = None) -> None:
        self.data = data or seeded()
        self.lock = threading.Lock()
        self.commits = 0

    def write(self, origin: Origin) -> FakeUnit:
        return FakeUnit(self, origin)

    @contextmanager
    def read(self) -> Iterator[FakeUnit]:
        with FakeUnit(self, None) as unit:
            yield unit

    def prune_changes(self, upto: int) -> int:
        with self.lock:
            pruned = [r for r in self.data.changes if r <= upto]
            for revision in pruned:
                del self.data.changes[revision]
            self.data.history = [h for h in self.data.history if h[0] > upto]
            return len(pruned)
