"""The Peewee repositories behind a unit of work: models, slots, settings, overrides, changes.

Each runs its queries on the unit's connection, inside the unit's transaction; none commits.
Writes that the history must keep (overrides) are recorded at the unit's next revision.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from peewee import JOIN, Database, Tuple, fn

from ..domain.changes import (
    Change,
    ChangeFilter,
    ChangeKind,
    Origin,
    Scope,
    image_prices_from_values,
    model_values,
    price_sources_from_values,
)
from ..domain.model import Model, ModelType, Slot
from ..domain.rules import Usage
from ..domain.validation import PRICE_FIELDS
from ..service_layer.unit_of_work import (
    AccountOverrides,
    Applied,
    OverrideHistoryRow,
    OverrideRow,
)
from . import bulk
from .tables import (
    AccountRow,
    AliasRow,
    ChangeRow,
    ChangeSubjectRow,
    GlobalSettingRow,
    ModelRow,
    OverrideChangeRow,
    SlotRow,
)
from .tables import OverrideRow as OverrideTable

if TYPE_CHECKING:
    from .store import PeeweeUnit


# -- models ------------------------------------------------------------------------------------


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def to_model(row: ModelRow, aliases: Iterable[str]) -> Model:
    return Model(
        id=row.id,
        model_name=row.model_name,
        display_name=row.display_name,
        provider=row.provider,
        model_type=ModelType(row.model_type),
        is_active=bool(row.is_active),
        input_price_per_1m_tokens=_decimal(row.input_price_per_1m_tokens),
        cached_input_price_per_1m_tokens=_decimal(row.cached_input_price_per_1m_tokens),
        output_price_per_1m_tokens=_decimal(row.output_price_per_1m_tokens),
        price_per_image=_decimal(row.price_per_image),
        context_window=row.context_window,
        max_output_tokens=row.max_output_tokens,
        aliases=tuple(aliases),
        image_prices=image_prices_from_values(json.loads(row.image_prices or "[]")),
        price_sources=price_sources_from_values(json.loads(row.price_sources or "[]")),
        deprecation_date=date.fromisoformat(row.deprecation_date) if row.deprecation_date else None,
        successor_id=row.successor_id,
    )


def _model_columns(model: Model) -> dict[str, object]:
    """The model table's columns: the recorded values without aliases, NULL for none."""
    columns: dict[str, object] = model_values(model)
    del columns["aliases"]  # a table of their own
    for field in PRICE_FIELDS:
        columns[field] = columns[field] or None
    for field in ("image_prices", "price_sources"):
        columns[field] = _json(columns[field]) if columns[field] else None
    columns["deprecation_date"] = columns["deprecation_date"] or None
    return columns


def aliases_of(model_ids: Iterable[int] | None = None) -> dict[int, list[str]]:
    query = AliasRow.select(AliasRow.model, AliasRow.alias).order_by(AliasRow.position)
    if model_ids is not None:
        query = query.where(AliasRow.model.in_(list(model_ids)))
    found: dict[int, list[str]] = defaultdict(list)
    for model_id, alias in query.tuples():
        found[model_id].append(alias)
    return found


class PeeweeModels:
    def __init__(self, unit: PeeweeUnit) -> None:
        self._unit = unit

    def get(self, model_id: int) -> Model | None:
        row = ModelRow.get_or_none(ModelRow.id == model_id)
        return None if row is None else to_model(row, aliases_of([model_id])[model_id])

    def find(self, name: str) -> Model | None:
        row = ModelRow.get_or_none(ModelRow.model_name == name)
        if row is None:
            alias = AliasRow.get_or_none(AliasRow.alias == name)
            if alias is None:
                return None
            row = ModelRow.get_by_id(alias.model_id)
        return to_model(row, aliases_of([row.id])[row.id])

    def names_taken(self, names: Iterable[str], except_model: int | None) -> dict[str, int]:
        names = list(names)
        taken: dict[str, int] = {}
        for model_id, name in (
            ModelRow.select(ModelRow.id, ModelRow.model_name)
            .where(ModelRow.model_name.in_(names))
            .tuples()
        ):
            taken[name] = model_id
        for model_id, alias in (
            AliasRow.select(AliasRow.model, AliasRow.alias)
            .where(AliasRow.alias.in_(names))
            .tuples()
        ):
            taken[alias] = model_id
        return {n: i for n, i in taken.items() if i != except_model}

    @staticmethod
    def insert_row(model: Model) -> None:
        """The model's row alone (no aliases, no id allocation): for the seed and `add`."""
        ModelRow.insert(id=model.id, **_model_columns(model)).execute()

    def add(self, model: Model) -> Model:
        if model.id:
            self._unit.reserve_model_id(model.id)
        model_id = model.id or self._unit.allocate_model_id()
        self.insert_row(replace(model, id=model_id))
        self._write_aliases(model_id, model.aliases)
        return replace(model, id=model_id)

    def update(self, model: Model) -> None:
        ModelRow.update(**_model_columns(model)).where(ModelRow.id == model.id).execute()
        AliasRow.delete().where(AliasRow.model == model.id).execute()
        self._write_aliases(model.id, model.aliases)

    def _write_aliases(self, model_id: int, aliases: Iterable[str]) -> None:
        rows = [{"alias": a, "model": model_id, "position": i} for i, a in enumerate(aliases)]
        if rows:
            AliasRow.insert_many(rows).execute()

    def delete(self, model_id: int) -> None:
        ModelRow.delete().where(ModelRow.id == model_id).execute()

    def usage(self, model_id: int, sample: int) -> Usage:
        globals_ = GlobalSettingRow.select(GlobalSettingRow.slot).where(
            GlobalSettingRow.model == model_id
        )
        defaults = SlotRow.select(SlotRow.name).where(SlotRow.default_model == model_id)
        overrides = OverrideTable.select().where(OverrideTable.model == model_id)
        predecessors = ModelRow.select(ModelRow.id).where(ModelRow.successor_id == model_id)
        return Usage(
            global_slots=tuple(sorted(slot for (slot,) in globals_.tuples())),
            default_slots=tuple(sorted(name for (name,) in defaults.tuples())),
            account_override_count=overrides.count(),
            account_ids=tuple(PeeweeOverrides.accounts_using(model_id, "", sample)),
            successor_of=tuple(sorted(i for (i,) in predecessors.tuples())),
        )


# -- slots and global settings -----------------------------------------------------------------


def to_slot(row: SlotRow) -> Slot:
    return Slot(
        name=row.name,
        display_name=row.display_name,
        required_provider=row.required_provider,
        required_model_type=ModelType(row.required_model_type),
        default_model_id=row.default_model_id,
    )


def _slot_columns(slot: Slot) -> dict[str, object]:
    return {
        "display_name": slot.display_name,
        "required_provider": slot.required_provider,
        "required_model_type": slot.required_model_type.value,
        "default_model": slot.default_model_id,
    }


class PeeweeSlots:
    def get(self, name: str) -> Slot | None:
        row = SlotRow.get_or_none(SlotRow.name == name)
        return None if row is None else to_slot(row)

    def names(self) -> list[str]:
        query = SlotRow.select(SlotRow.name).order_by(SlotRow.position)
        return [name for (name,) in query.tuples()]

    def add(self, slot: Slot) -> None:
        last = SlotRow.select(SlotRow.position).order_by(SlotRow.position.desc()).limit(1).scalar()
        SlotRow.insert(
            name=slot.name, position=(last if last is not None else -1) + 1, **_slot_columns(slot)
        ).execute()

    def update(self, slot: Slot) -> None:
        SlotRow.update(**_slot_columns(slot)).where(SlotRow.name == slot.name).execute()

    def holders(self, name: str) -> list[str]:
        found = []
        if GlobalSettingRow.select().where(GlobalSettingRow.slot == name).exists():
            found.append("its global setting")
        # A scan of the overrides when none uses the slot: slot edits are rare operator work.
        if OverrideTable.select().where(OverrideTable.slot == name).exists():
            found.append("account overrides")
        return found


class PeeweeGlobalSettings:
    def get(self, slot: str) -> int | None:
        row = GlobalSettingRow.get_or_none(GlobalSettingRow.slot == slot)
        return None if row is None else row.model_id

    def set(self, slot: str, model_id: int | None) -> None:
        if model_id is None:
            GlobalSettingRow.delete().where(GlobalSettingRow.slot == slot).execute()
        elif not (
            GlobalSettingRow.update(model=model_id).where(GlobalSettingRow.slot == slot).execute()
        ):
            GlobalSettingRow.insert(slot=slot, model=model_id).execute()


# -- overrides and their history ---------------------------------------------------------------


class PeeweeOverrides:
    def __init__(self, unit: PeeweeUnit, db: Database) -> None:
        self._unit = unit
        self._db = db

    def get(self, account_id: str, slot: str) -> int | None:
        row = OverrideTable.get_or_none(
            (OverrideTable.account == account_id) & (OverrideTable.slot == slot)
        )
        return None if row is None else row.model_id

    def account_revision(self, account_id: str) -> int:
        row = AccountRow.get_or_none(AccountRow.account_id == account_id)
        return 0 if row is None else row.revision

    def set(self, account_id: str, slot: str, model_id: int | None) -> None:
        before = self.get(account_id, slot)
        if before == model_id:
            return
        revision = self._unit.next_revision
        where = (OverrideTable.account == account_id) & (OverrideTable.slot == slot)
        if model_id is None:
            OverrideTable.delete().where(where).execute()
        elif before is None:
            OverrideTable.insert(account=account_id, slot=slot, model=model_id).execute()
        else:
            OverrideTable.update(model=model_id).where(where).execute()
        OverrideChangeRow.insert(
            revision=revision,
            account=account_id,
            slot=slot,
            before_model_id=before,
            after_model_id=model_id,
        ).execute()
        if not (
            AccountRow.update(revision=revision)
            .where(AccountRow.account_id == account_id)
            .execute()
        ):
            AccountRow.insert(account_id=account_id, revision=revision).execute()

    def apply(self, rows: Sequence[OverrideRow]) -> Applied:
        return bulk.apply_overrides(self._db, rows, self._unit.next_revision)

    def history(self, revision: int) -> Iterator[OverrideHistoryRow]:
        query = (
            OverrideChangeRow.select(
                OverrideChangeRow.account,
                OverrideChangeRow.slot,
                OverrideChangeRow.before_model_id,
                OverrideChangeRow.after_model_id,
            )
            .where(OverrideChangeRow.revision == revision)
            .order_by(OverrideChangeRow.account, OverrideChangeRow.slot)
        )
        # The raw cursor: an import's history can be a million rows.
        for row in self._db.execute(query):
            yield OverrideHistoryRow(*row)

    def history_page(
        self, revision: int, after: tuple[str, str] | None, limit: int
    ) -> list[OverrideHistoryRow]:
        columns = (OverrideChangeRow.account, OverrideChangeRow.slot)
        query = (
            OverrideChangeRow.select(
                *columns, OverrideChangeRow.before_model_id, OverrideChangeRow.after_model_id
            )
            .where(OverrideChangeRow.revision == revision)
            .order_by(*columns)
            .limit(limit)
        )
        if after is not None:
            query = query.where(Tuple(*columns) > Tuple(*after))
        return [OverrideHistoryRow(*row) for row in query.tuples()]

    def changed_after(self, revision: int) -> int | None:
        return bulk.overrides_changed_after(self._db, revision)

    def last_change(self, account_id: str, slot: str, after: int) -> int | None:
        return (
            OverrideChangeRow.select(OverrideChangeRow.revision)
            .where(
                (OverrideChangeRow.account == account_id)
                & (OverrideChangeRow.slot == slot)
                & (OverrideChangeRow.revision > after)
            )
            .order_by(OverrideChangeRow.revision.desc())
            .limit(1)
            .scalar()
        )

    @staticmethod
    def accounts_using(model_id: int, after: str, limit: int) -> list[str]:
        query = (
            OverrideTable.select(OverrideTable.account)
            .where((OverrideTable.model == model_id) & (OverrideTable.account > after))
            .distinct()
            .order_by(OverrideTable.account)
            .limit(limit)
        )
        return [account for (account,) in query.tuples()]

    def accounts_page(
        self, slot: str, model_id: int, after: str, limit: int
    ) -> list[AccountOverrides]:
        matching = OverrideTable.select(OverrideTable.account).where(
            OverrideTable.account > after
        )
        if slot:
            matching = matching.where(OverrideTable.slot == slot)
        if model_id:
            matching = matching.where(OverrideTable.model == model_id)
        accounts = [
            a for (a,) in matching.distinct().order_by(OverrideTable.account).limit(limit).tuples()
        ]
        if not accounts:
            return []
        slot_order = dict(SlotRow.select(SlotRow.name, SlotRow.position).tuples())
        overrides: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for account, slot_name, model in (
            OverrideTable.select(OverrideTable.account, OverrideTable.slot, OverrideTable.model)
            .where(OverrideTable.account.in_(accounts))
            .tuples()
        ):
            overrides[account].append((slot_name, model))
        revisions = dict(
            AccountRow.select(AccountRow.account_id, AccountRow.revision)
            .where(AccountRow.account_id.in_(accounts))
            .tuples()
        )
        return [
            AccountOverrides(
                a,
                tuple(sorted(overrides[a], key=lambda o: slot_order.get(o[0], 0))),
                revisions.get(a, 0),
            )
            for a in accounts
        ]

    def pairs(self) -> set[tuple[str, str]]:
        query = OverrideTable.select(OverrideTable.account, OverrideTable.slot)
        return {(account, slot) for account, slot in self._db.execute(query)}

    def choices(self) -> set[tuple[str, int]]:
        query = OverrideTable.select(OverrideTable.slot, OverrideTable.model).distinct()
        return {(slot, model_id) for slot, model_id in self._db.execute(query)}

    def selecting(self, model_id: int) -> list[tuple[str, str]]:
        query = OverrideTable.select(OverrideTable.account, OverrideTable.slot).where(
            OverrideTable.model == model_id
        )
        return [(account, slot) for account, slot in self._db.execute(query)]


# -- the change log ----------------------------------------------------------------------------


def _json(values: object) -> str | None:
    return None if values is None else json.dumps(values, separators=(",", ":"))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = datetime.resolution  # timedelta(microseconds=1)


def _time_us(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _to_change(row: ChangeRow) -> Change:
    return Change(
        kind=ChangeKind(row.kind),
        scope=Scope(row.scope) if row.scope else None,
        slot=row.slot or "",
        account_id=row.account_id or "",
        model_id=row.model_id or 0,
        before=None if row.before is None else json.loads(row.before),
        after=None if row.after is None else json.loads(row.after),
        reverted_revision=row.reverted_revision or 0,
        origin=Origin(row.actor, row.method, row.request_id, row.reason),
        revision=row.revision,
        time=_EPOCH + row.time_us * _MICROSECOND,
    )


def record_change(change: Change) -> None:
    """Store a change (revision and time set) and the subjects ListChanges finds it by."""
    assert change.revision and change.time is not None
    origin = change.origin
    ChangeRow.insert(
        revision=change.revision,
        kind=change.kind.value,
        scope=change.scope and change.scope.value,
        slot=change.slot or None,
        account_id=change.account_id or None,
        model_id=change.model_id or None,
        actor=origin.actor,
        method=origin.method,
        request_id=origin.request_id,
        reason=origin.reason,
        time_us=_time_us(change.time),
        before=_json(change.before),
        after=_json(change.after),
        reverted_revision=change.reverted_revision or None,
    ).execute()
    subjects = [f"model:{m}" for m in sorted(change.models)] + [
        f"slot:{s}" for s in sorted(change.slots)
    ]
    if subjects:
        ChangeSubjectRow.insert_many(
            [{"subject": s, "revision": change.revision} for s in subjects]
        ).execute()


class PeeweeChangeLog:
    def get(self, revision: int) -> Change | None:
        row = ChangeRow.get_or_none(ChangeRow.revision == revision)
        return None if row is None else _to_change(row)

    def last_change(
        self,
        after: int,
        kinds: Iterable[ChangeKind],
        *,
        scope: Scope | None = None,
        slot: str = "",
        model_id: int = 0,
    ) -> int | None:
        query = ChangeRow.select(ChangeRow.revision).where(
            (ChangeRow.revision > after) & ChangeRow.kind.in_([k.value for k in kinds])
        )
        if scope is not None:
            query = query.where(ChangeRow.scope == scope.value)
        if slot:
            query = query.where(ChangeRow.slot == slot)
        if model_id:
            query = query.where(ChangeRow.model_id == model_id)
        return query.order_by(ChangeRow.revision.desc()).limit(1).scalar()

    def last_about(
        self, after: int, kinds: Iterable[ChangeKind], subjects: Iterable[str]
    ) -> int | None:
        subjects = list(subjects)
        if not subjects:
            return None
        query = (
            ChangeRow.select(ChangeRow.revision)
            .join(ChangeSubjectRow, on=ChangeSubjectRow.revision == ChangeRow.revision)
            .where(
                (ChangeRow.revision > after)
                & ChangeRow.kind.in_([k.value for k in kinds])
                & ChangeSubjectRow.subject.in_(subjects)
            )
        )
        return query.order_by(ChangeRow.revision.desc()).limit(1).scalar()

    def page(self, where: ChangeFilter, before: int, limit: int) -> list[Change]:
        query = ChangeRow.select().order_by(ChangeRow.revision.desc()).limit(limit)
        if before:
            query = query.where(ChangeRow.revision < before)
        for subject in (
            f"model:{where.model_id}" if where.model_id else "",
            f"slot:{where.slot}" if where.slot else "",
        ):
            if subject:
                query = query.where(
                    ChangeRow.revision.in_(
                        ChangeSubjectRow.select(ChangeSubjectRow.revision).where(
                            ChangeSubjectRow.subject == subject
                        )
                    )
                )
        if where.account_id:
            query = query.where(
                ChangeRow.revision.in_(
                    OverrideChangeRow.select(OverrideChangeRow.revision).where(
                        OverrideChangeRow.account == where.account_id
                    )
                )
            )
        if where.actor:
            query = query.where(ChangeRow.actor == where.actor)
        if where.start_time is not None:
            query = query.where(ChangeRow.time_us >= _time_us(where.start_time))
        if where.end_time is not None:
            query = query.where(ChangeRow.time_us < _time_us(where.end_time))
        if where.min_revision:
            query = query.where(ChangeRow.revision >= where.min_revision)
        if where.max_revision:
            query = query.where(ChangeRow.revision <= where.max_revision)
        return [_to_change(row) for row in query]

    def between(self, after: int, upto: int, limit: int) -> list[Change]:
        query = (
            ChangeRow.select()
            .where((ChangeRow.revision > after) & (ChangeRow.revision <= upto))
            .order_by(ChangeRow.revision)
            .limit(limit)
        )
        return [_to_change(row) for row in query]

    def first_at(self, moment: datetime) -> int | None:
        return (
            ChangeRow.select(fn.MIN(ChangeRow.revision))
            .where(ChangeRow.time_us >= _time_us(moment))
            .scalar()
        )

    def since(self, revision: int) -> list[Change]:
        query = (
            ChangeRow.select(ChangeRow.revision, ChangeRow.kind, ChangeRow.scope, ChangeRow.time_us)
            .where(ChangeRow.revision > revision)
            .order_by(ChangeRow.revision)
        )
        return [
            Change(
                ChangeKind(kind),
                scope=Scope(scope) if scope else None,
                revision=rev,
                time=_EPOCH + time_us * _MICROSECOND,
            )
            for rev, kind, scope, time_us in query.tuples()
        ]


# -- snapshot reads ----------------------------------------------------------------------------


def shared(records: Iterable[tuple[str, list[int | None]]]) -> dict[str, tuple[int | None, ...]]:
    """Records as tuples, equal ones shared."""
    seen: dict[tuple[int | None, ...], tuple[int | None, ...]] = {}
    result: dict[str, tuple[int | None, ...]] = {}
    for account_id, record in records:
        built = tuple(record)
        result[account_id] = seen.setdefault(built, built)
    return result


def all_accounts(db: Database, slots: Sequence[str]) -> Iterator[tuple[str, list[int | None]]]:
    """Every account's record, built whole in one ordered pass (no per-account scratch)."""
    index = {slot: i for i, slot in enumerate(slots, start=1)}
    width = len(slots) + 1
    query = (
        AccountRow.select(
            AccountRow.account_id, AccountRow.revision, OverrideTable.slot, OverrideTable.model
        )
        .join(OverrideTable, JOIN.LEFT_OUTER, on=(OverrideTable.account == AccountRow.account_id))
        .order_by(AccountRow.account_id)
    )
    current: str | None = None
    record: list[int | None] = []
    # The raw cursor: at a million rows Peewee's row wrapping would triple the time.
    for account_id, revision, slot, model_id in db.execute(query):
        if account_id != current:
            if current is not None:
                yield current, record
            current, record = account_id, [revision] + [None] * (width - 1)
        if slot is not None:
            record[index[slot]] = model_id
    if current is not None:
        yield current, record


def accounts_changed_after(
    db: Database, slots: Sequence[str], changed_after: int
) -> Iterator[tuple[str, list[int | None]]]:
    """The accounts changed after a revision, found by the revision index (no full scan)."""
    index = {slot: i for i, slot in enumerate(slots, start=1)}
    width = len(slots) + 1
    changed = AccountRow.select(AccountRow.account_id).where(AccountRow.revision > changed_after)
    found: dict[str, list[int | None]] = {}
    for account_id, revision in db.execute(
        AccountRow.select(AccountRow.account_id, AccountRow.revision).where(
            AccountRow.revision > changed_after
        )
    ):
        found[account_id] = [revision] + [None] * (width - 1)
    overrides = OverrideTable.select(
        OverrideTable.account, OverrideTable.slot, OverrideTable.model
    ).where(OverrideTable.account.in_(changed))
    for account_id, slot, model_id in db.execute(overrides):
        found[account_id][index[slot]] = model_id
    return iter(found.items())
