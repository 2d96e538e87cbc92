"""The store: Peewee queries behind a write unit of work and a consistent reader.

Every write runs in one `WriteUnit`: it locks the state row first (which serializes writers on
both engines), records exactly one change with a new revision, and commits explicitly; leaving
the block without `commit()` rolls everything back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from types import MappingProxyType
from typing import TypeVar

import peewee
from peewee import JOIN, Database

from ..domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    ModelConfigError,
    StorageUnavailable,
)
from ..domain.model import Model, ModelType, Slot
from ..domain.prices import price_text
from ..domain.rules import Usage
from ..domain.state import AccountRecord, Catalog
from .database import ensure_connected, is_postgres, read_begin_args
from .tables import (
    AccountRow,
    AliasRow,
    ChangeRow,
    GlobalSettingRow,
    ModelRow,
    OverrideRow,
    SlotRow,
    StateRow,
    database,
)

T = TypeVar("T")

# Change kinds: what a replica must reload to catch up with a revision. Account changes (one
# account, or many from an import) are found by the accounts' own revisions.
CATALOG = "catalog"
GLOBAL = "global"
ACCOUNT = "account"
IMPORT = "import"
SEED = "seed"


@dataclass(frozen=True, slots=True)
class Change:
    revision: int
    kind: str
    account_id: str | None


def _translated(exc: BaseException | None) -> ModelConfigError | None:
    """The domain's view of a database error; None for anything else.

    The services check every constraint before writing, so the last two are a backstop: the
    database refusing a value or a reference still reaches the client as a deliberate status.
    """
    if isinstance(exc, peewee.OperationalError | peewee.InterfaceError):
        return StorageUnavailable(f"the database is unavailable: {exc}")
    if isinstance(exc, peewee.DataError):
        return InvalidArgument(
            f"the database refused a value: {exc}", reason="VALUE_REJECTED_BY_DATABASE"
        )
    if isinstance(exc, peewee.IntegrityError):
        return FailedPrecondition(
            f"the database refused the change: {exc}", metadata={"constraint": str(exc)}
        )
    return None


@contextmanager
def storage_errors() -> Iterator[None]:
    """Raise database errors as the domain's errors (see _translated)."""
    try:
        yield
    except (peewee.DatabaseError, peewee.InterfaceError) as exc:
        translated = _translated(exc)
        if translated is None:
            raise
        raise translated from exc


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _to_model(row: ModelRow, aliases: Iterable[str]) -> Model:
    return Model(
        id=row.id,
        model_name=row.model_name,
        display_name=row.display_name,
        provider=row.provider,
        model_type=ModelType(row.model_type),
        is_active=bool(row.is_active),
        input_price_per_1m_tokens=_decimal(row.input_price_per_1m_tokens),
        output_price_per_1m_tokens=_decimal(row.output_price_per_1m_tokens),
        price_per_image=_decimal(row.price_per_image),
        context_window=row.context_window,
        max_output_tokens=row.max_output_tokens,
        aliases=tuple(aliases),
    )


def _model_columns(model: Model) -> dict[str, object]:
    def text(price: Decimal | None) -> str | None:
        return None if price is None else price_text(price)

    return {
        "model_name": model.model_name,
        "display_name": model.display_name,
        "provider": model.provider,
        "model_type": model.model_type.value,
        "is_active": model.is_active,
        "input_price_per_1m_tokens": text(model.input_price_per_1m_tokens),
        "output_price_per_1m_tokens": text(model.output_price_per_1m_tokens),
        "price_per_image": text(model.price_per_image),
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
    }


def _aliases(model_ids: Iterable[int] | None = None) -> dict[int, list[str]]:
    query = AliasRow.select(AliasRow.model, AliasRow.alias).order_by(AliasRow.position)
    if model_ids is not None:
        query = query.where(AliasRow.model.in_(list(model_ids)))
    found: dict[int, list[str]] = defaultdict(list)
    for model_id, alias in query.tuples():
        found[model_id].append(alias)
    return found


def _usage(model_id: int, sample: int, revision: int) -> Usage:
    globals_ = GlobalSettingRow.select(GlobalSettingRow.slot).where(
        GlobalSettingRow.model == model_id
    )
    defaults = SlotRow.select(SlotRow.name).where(SlotRow.default_model == model_id)
    overrides = OverrideRow.select().where(OverrideRow.model == model_id)
    accounts = (
        OverrideRow.select(OverrideRow.account)
        .where(OverrideRow.model == model_id)
        .distinct()
        .order_by(OverrideRow.account)
        .limit(sample)
    )
    return Usage(
        global_slots=tuple(sorted(slot for (slot,) in globals_.tuples())),
        default_slots=tuple(sorted(name for (name,) in defaults.tuples())),
        account_override_count=overrides.count(),
        account_ids=tuple(a for (a,) in accounts.tuples()),
        revision=revision,
    )


def _catalog() -> Catalog:
    """Models, slots and global settings as one Catalog."""
    aliases = _aliases()
    models = {
        row.id: _to_model(row, aliases.get(row.id, ()))
        for row in ModelRow.select().order_by(ModelRow.id)
    }
    slots = {row.name: _to_slot(row) for row in SlotRow.select().order_by(SlotRow.position)}
    global_models = {
        slot: model_id
        for slot, model_id in GlobalSettingRow.select(
            GlobalSettingRow.slot, GlobalSettingRow.model
        ).tuples()
    }
    state = StateRow.get_by_id(1)
    return Catalog(
        models=MappingProxyType(models),
        slots=MappingProxyType(slots),
        global_models=MappingProxyType(global_models),
        global_revision=state.global_revision,
    )


class WriteUnit:
    """One write transaction: lock, read, change, `record_change`, `commit`."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._open = False
        self._recorded = False

    def __enter__(self) -> WriteUnit:
        with storage_errors():
            ensure_connected(self._db)
            self._manual = self._db.manual_commit()
            self._manual.__enter__()
            try:
                self._db.begin()
                self._open = True
                query = StateRow.select().where(StateRow.id == 1)
                if self._db.for_update:
                    query = query.for_update()
                self._state = query.get()
            except BaseException:
                self._close()
                raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        with storage_errors():
            try:
                self._close()
            except (peewee.DatabaseError, peewee.InterfaceError):
                if exc is None:
                    raise  # closing failed after a clean body: report it
        translated = _translated(exc)
        if translated is not None:
            raise translated from exc

    def _close(self) -> None:
        try:
            if self._open:
                self._open = False
                self._db.rollback()
        finally:
            self._manual.__exit__(None, None, None)

    def commit(self) -> None:
        self._db.commit()
        self._open = False

    # -- the state row -------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._state.revision

    @property
    def global_revision(self) -> int:
        return self._state.global_revision

    def record_change(self, kind: str, account_id: str | None = None) -> int:
        """Give this unit's change the next revision; once per unit, before commit."""
        assert not self._recorded, "one revision per write"
        self._recorded = True
        state = self._state
        state.revision += 1
        if kind == GLOBAL:
            state.global_revision = state.revision
        if kind == ACCOUNT:
            assert account_id is not None
            updated = (
                AccountRow.update(revision=state.revision)
                .where(AccountRow.account_id == account_id)
                .execute()
            )
            if not updated:
                AccountRow.insert(account_id=account_id, revision=state.revision).execute()
        StateRow.update(
            revision=state.revision,
            global_revision=state.global_revision,
            next_model_id=state.next_model_id,
        ).where(StateRow.id == 1).execute()
        ChangeRow.insert(revision=state.revision, kind=kind, account_id=account_id).execute()
        return state.revision

    # -- models --------------------------------------------------------------------------------

    def get_model(self, model_id: int) -> Model | None:
        row = ModelRow.get_or_none(ModelRow.id == model_id)
        return None if row is None else _to_model(row, _aliases([model_id])[model_id])

    def find_model(self, name: str) -> Model | None:
        row = ModelRow.get_or_none(ModelRow.model_name == name)
        if row is None:
            alias = AliasRow.get_or_none(AliasRow.alias == name)
            if alias is None:
                return None
            row = ModelRow.get_by_id(alias.model_id)
        return _to_model(row, _aliases([row.id])[row.id])

    def names_taken(self, names: Iterable[str], except_model: int | None = None) -> dict[str, int]:
        """Which of these names are a name or alias of another model, and whose."""
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

    def insert_model(self, model: Model) -> Model:
        """Insert with the next id from the state row; returns the model with its id."""
        model_id = self._state.next_model_id
        self._state.next_model_id += 1
        ModelRow.insert(id=model_id, **_model_columns(model)).execute()
        self._write_aliases(model_id, model.aliases)
        return replace(model, id=model_id)

    def update_model(self, model: Model) -> None:
        ModelRow.update(**_model_columns(model)).where(ModelRow.id == model.id).execute()
        AliasRow.delete().where(AliasRow.model == model.id).execute()
        self._write_aliases(model.id, model.aliases)

    def _write_aliases(self, model_id: int, aliases: Iterable[str]) -> None:
        rows = [{"alias": a, "model": model_id, "position": i} for i, a in enumerate(aliases)]
        if rows:
            AliasRow.insert_many(rows).execute()

    def delete_model(self, model_id: int) -> None:
        ModelRow.delete().where(ModelRow.id == model_id).execute()

    def usage(self, model_id: int, sample: int = 10) -> Usage:
        return _usage(model_id, sample, self.revision)

    def catalog(self) -> Catalog:
        return _catalog()

    # -- slots and settings --------------------------------------------------------------------

    def slot(self, name: str) -> Slot | None:
        row = SlotRow.get_or_none(SlotRow.name == name)
        return None if row is None else _to_slot(row)

    def global_model_id(self, slot: str) -> int | None:
        row = GlobalSettingRow.get_or_none(GlobalSettingRow.slot == slot)
        return None if row is None else row.model_id

    def set_global(self, slot: str, model_id: int) -> None:
        if (
            not GlobalSettingRow.update(model=model_id)
            .where(GlobalSettingRow.slot == slot)
            .execute()
        ):
            GlobalSettingRow.insert(slot=slot, model=model_id).execute()

    def account_revision(self, account_id: str) -> int:
        row = AccountRow.get_or_none(AccountRow.account_id == account_id)
        return 0 if row is None else row.revision

    def override_model_id(self, account_id: str, slot: str) -> int | None:
        row = OverrideRow.get_or_none(
            (OverrideRow.account == account_id) & (OverrideRow.slot == slot)
        )
        return None if row is None else row.model_id

    def set_override(self, account_id: str, slot: str, model_id: int) -> None:
        """Set an override; call after record_change(ACCOUNT, account_id) created the account."""
        updated = (
            OverrideRow.update(model=model_id)
            .where((OverrideRow.account == account_id) & (OverrideRow.slot == slot))
            .execute()
        )
        if not updated:
            OverrideRow.insert(account=account_id, slot=slot, model=model_id).execute()

    def import_overrides(self, records: Sequence[tuple[str, str, int]], revision: int) -> None:
        """Upsert (account, slot, model id) overrides; each account's revision becomes `revision`.

        At a million rows, building Peewee queries would cost more than the database's own work:
        PostgreSQL gets the rows by COPY into a temporary table, SQLite by plain executemany.
        """
        if is_postgres(self._db):
            self._import_by_copy(records, revision)
            return
        account_ids = dict.fromkeys(account_id for account_id, _, _ in records)
        cursor = self._db.cursor()
        for chunk in _chunks([(a, revision) for a in account_ids]):
            cursor.executemany(_UPSERT_ACCOUNT.format(p="?"), chunk)
        for chunk in _chunks(records):
            cursor.executemany(_UPSERT_OVERRIDE.format(p="?"), chunk)

    def _import_by_copy(self, records: Sequence[tuple[str, str, int]], revision: int) -> None:
        with self._db.connection().cursor() as cursor:
            cursor.execute(
                "CREATE TEMPORARY TABLE import_override (account_id TEXT, slot TEXT,"
                " model_id BIGINT) ON COMMIT DROP"
            )
            copy_in = "COPY import_override (account_id, slot, model_id) FROM STDIN"
            with cursor.copy(copy_in) as copy:
                for record in records:
                    copy.write_row(record)
            cursor.execute(
                "INSERT INTO account (account_id, revision)"
                " SELECT DISTINCT account_id, %s FROM import_override ORDER BY account_id"
                " ON CONFLICT (account_id) DO UPDATE SET revision = excluded.revision",
                (revision,),
            )
            cursor.execute(
                "INSERT INTO account_override (account_id, slot, model_id)"
                " SELECT account_id, slot, model_id FROM import_override"
                " ORDER BY account_id, slot"  # key order: index pages are filled in sequence
                " ON CONFLICT (account_id, slot) DO UPDATE SET model_id = excluded.model_id"
            )

    def delete_override(self, account_id: str, slot: str) -> None:
        OverrideRow.delete().where(
            (OverrideRow.account == account_id) & (OverrideRow.slot == slot)
        ).execute()


_UPSERT_ACCOUNT = (
    "INSERT INTO account (account_id, revision) VALUES ({p}, {p}) "
    "ON CONFLICT (account_id) DO UPDATE SET revision = excluded.revision"
)
_UPSERT_OVERRIDE = (
    "INSERT INTO account_override (account_id, slot, model_id) VALUES ({p}, {p}, {p}) "
    "ON CONFLICT (account_id, slot) DO UPDATE SET model_id = excluded.model_id"
)


def _shared(records: Iterable[tuple[str, list[int | None]]]) -> dict[str, AccountRecord]:
    """Records as tuples, equal ones shared."""
    shared: dict[AccountRecord, AccountRecord] = {}
    result: dict[str, AccountRecord] = {}
    for account_id, record in records:
        built = tuple(record)
        result[account_id] = shared.setdefault(built, built)
    return result


def _chunks(rows: Sequence[T], size: int = 10_000) -> Iterator[Sequence[T]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _to_slot(row: SlotRow) -> Slot:
    return Slot(
        name=row.name,
        required_provider=row.required_provider,
        required_model_type=ModelType(row.required_model_type),
        default_model_id=row.default_model_id,
    )


class Reader:
    """Several queries that read one snapshot of the database, never blocking writers."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with storage_errors():
            ensure_connected(self._db)
            with self._db.manual_commit():
                self._db.begin(**read_begin_args(self._db))
                try:
                    yield
                finally:
                    self._db.rollback()

    @contextmanager
    def session(self) -> Iterator[Reader]:
        with self._transaction():
            yield self

    def revision(self) -> int:
        return StateRow.get_by_id(1).revision

    def changes_since(self, revision: int) -> list[Change]:
        query = (
            ChangeRow.select(ChangeRow.revision, ChangeRow.kind, ChangeRow.account_id)
            .where(ChangeRow.revision > revision)
            .order_by(ChangeRow.revision)
        )
        return [Change(*row) for row in query.tuples()]

    def catalog(self) -> Catalog:
        return _catalog()

    def accounts(
        self, slots: Sequence[str], changed_after: int | None = None
    ) -> dict[str, AccountRecord]:
        """Every account's record, or only those changed after a revision.

        Records are (revision, model id or None per slot in `slots` order); equal records are
        one shared tuple, which keeps a million accounts with a few distinct choices small.
        """
        index = {slot: i for i, slot in enumerate(slots, start=1)}
        width = len(slots) + 1
        if changed_after is not None:
            return _shared(self._changed_accounts(index, width, changed_after))
        query = (
            AccountRow.select(
                AccountRow.account_id, AccountRow.revision, OverrideRow.slot, OverrideRow.model
            )
            .join(
                OverrideRow,
                JOIN.LEFT_OUTER,
                on=(OverrideRow.account == AccountRow.account_id),
            )
            .order_by(AccountRow.account_id)
        )

        # One ordered pass builds each record whole, with no per-account scratch left behind.
        def records() -> Iterator[tuple[str, list[int | None]]]:
            current: str | None = None
            record: list[int | None] = []
            # The raw cursor: at a million rows Peewee's row wrapping would triple the time.
            for account_id, revision, slot, model_id in self._db.execute(query):
                if account_id != current:
                    if current is not None:
                        yield current, record
                    current, record = account_id, [revision] + [None] * (width - 1)
                if slot is not None:
                    record[index[slot]] = model_id
            if current is not None:
                yield current, record

        return _shared(records())

    def _changed_accounts(
        self, index: dict[str, int], width: int, changed_after: int
    ) -> Iterator[tuple[str, list[int | None]]]:
        """The accounts changed after a revision, found by the revision index (no full scan)."""
        changed = AccountRow.select(AccountRow.account_id).where(
            AccountRow.revision > changed_after
        )
        found: dict[str, list[int | None]] = {}
        for account_id, revision in self._db.execute(
            AccountRow.select(AccountRow.account_id, AccountRow.revision).where(
                AccountRow.revision > changed_after
            )
        ):
            found[account_id] = [revision] + [None] * (width - 1)
        overrides = OverrideRow.select(
            OverrideRow.account, OverrideRow.slot, OverrideRow.model
        ).where(OverrideRow.account.in_(changed))
        for account_id, slot, model_id in self._db.execute(overrides):
            found[account_id][index[slot]] = model_id
        return iter(found.items())

    def usage(self, model_id: int, sample: int) -> Usage | None:
        if not ModelRow.select().where(ModelRow.id == model_id).exists():
            return None
        return _usage(model_id, sample, self.revision())


class Store:
    """The database behind the daemon: write units and consistent readers."""

    def __init__(self, db: Database) -> None:
        self.db = db
        database.initialize(db)

    def write(self) -> WriteUnit:
        return WriteUnit(self.db)

    def read(self):  # -> contextmanager[Reader]
        return Reader(self.db).session()

    def close(self) -> None:
        self.db.close()
