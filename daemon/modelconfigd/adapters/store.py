"""The Peewee store: units of work over SQLite or PostgreSQL (see service_layer/unit_of_work.py).

A write unit locks the single state row first (which serializes writers on both engines) and
commits only through `commit(change)`, which records the change with the next revision in the
same transaction; leaving the block without it rolls everything back. A read unit is one
transaction that sees one committed revision and never blocks writers.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType

import peewee
from peewee import Database

from ..domain.changes import Change, Origin
from ..domain.errors import (
    DatabaseReadOnly,
    FailedPrecondition,
    InvalidArgument,
    ModelConfigError,
    StorageFull,
    StorageUnavailable,
)
from ..domain.state import AccountRecord, Catalog
from . import repositories
from .database import ensure_connected, is_postgres, read_begin_args
from .notifications import notify_on_commit
from .tables import (
    ChangeRow,
    ChangeSubjectRow,
    GlobalSettingRow,
    ModelRow,
    OverrideChangeRow,
    SlotRow,
    StateRow,
    database,
)

# The drivers' codes for a database that refuses every write: SQLite's primary result codes
# (the low byte of the extended one) and PostgreSQL's SQLSTATEs.
_FULL = {sqlite3.SQLITE_FULL, "53100"}  # SQLITE_FULL; disk_full
_READ_ONLY = {sqlite3.SQLITE_READONLY, "25006"}  # SQLITE_READONLY; read_only_sql_transaction


def _driver_code(exc: BaseException) -> int | str | None:
    """The sqlite3 or psycopg error under Peewee's: its result code or SQLSTATE."""
    cause = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
    cause = cause or exc.__cause__ or exc.__context__
    code = getattr(cause, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    return getattr(cause, "sqlstate", None)


def _translated(exc: BaseException | None) -> ModelConfigError | None:
    """The domain's view of a database error; None for anything else.

    The services check every constraint before writing, so the last two are a backstop: the
    database refusing a value or a reference still reaches the client as a deliberate status.
    """
    if isinstance(exc, peewee.DatabaseError | peewee.InterfaceError):
        code = _driver_code(exc)
        if code in _FULL:
            return StorageFull(
                f"the disk holding the database is full ({exc}): free space to write again"
            )
        if code in _READ_ONLY:
            return DatabaseReadOnly(
                f"the database is read-only ({exc}): make it writable to write again"
            )
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


def storage_condition(exc: BaseException) -> ModelConfigError | None:
    """What a database error means (a full disk, a read-only file, no server), if known."""
    return _translated(exc)


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


class PeeweeUnit:
    """One transaction with the repositories; a write unit when `origin` is given."""

    def __init__(self, db: Database, origin: Origin | None) -> None:
        self._db = db
        self._origin = origin
        self._open = False
        self.committed: Change | None = None
        self.models = repositories.PeeweeModels(self)
        self.slots = repositories.PeeweeSlots()
        self.settings = repositories.PeeweeGlobalSettings()
        self.overrides = repositories.PeeweeOverrides(self, db)
        self.changes = repositories.PeeweeChangeLog()

    def __enter__(self) -> PeeweeUnit:
        try:
            with storage_errors():
                ensure_connected(self._db)
                self._manual = self._db.manual_commit()
                self._manual.__enter__()
                try:
                    if self._origin is None:
                        self._db.begin(**read_begin_args(self._db))
                    else:
                        self._db.begin()
                    self._open = True
                    query = StateRow.select().where(StateRow.id == 1)
                    if self._origin is not None and self._db.for_update:
                        query = query.for_update()
                    self._state = query.get()
                except BaseException:
                    self._close()
                    raise
        except DatabaseReadOnly:
            self._reconnect_later()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        with storage_errors():
            try:
                self._close()
            except (peewee.DatabaseError, peewee.InterfaceError):
                if exc is None and self.committed is None:
                    raise  # closing failed after a clean body: report it
        translated = _translated(exc)
        if isinstance(translated or exc, DatabaseReadOnly):
            self._reconnect_later()
        if translated is not None:
            raise translated from exc

    def _reconnect_later(self) -> None:
        """Close this thread's connection: SQLite opens a file it cannot write read-only and
        keeps it so for the connection's life; the next unit's new connection finds out whether
        it is writable again (so writes recover without a restart)."""
        with contextlib.suppress(peewee.DatabaseError, peewee.InterfaceError):
            self._db.close()

    def _close(self) -> None:
        try:
            if self._open:
                self._open = False
                self._db.rollback()
        finally:
            self._manual.__exit__(None, None, None)

    # -- the state row -------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._state.revision

    @property
    def global_revision(self) -> int:
        return self._state.global_revision

    @property
    def next_revision(self) -> int:
        """The revision this unit's commit will take (writers are serialized by the lock)."""
        return self._state.revision + 1

    def allocate_model_id(self) -> int:
        """The next model id: allocated here rather than by a sequence, so both engines agree."""
        model_id = self._state.next_model_id
        self._state.next_model_id += 1
        return model_id

    def reserve_model_id(self, model_id: int) -> None:
        """A model stored with an id of its own: later allocations come after it."""
        self._state.next_model_id = max(self._state.next_model_id, model_id + 1)

    def commit(self, change: Change) -> Change:
        assert self._origin is not None, "a read unit cannot commit"
        assert self._open and self.committed is None, "one commit per unit"
        state = self._state
        recorded = replace(
            change, revision=self.next_revision, time=datetime.now(UTC), origin=self._origin
        )
        state.revision = recorded.revision
        if recorded.changes_global_settings:
            state.global_revision = recorded.revision
        with storage_errors():
            StateRow.update(
                revision=state.revision,
                global_revision=state.global_revision,
                next_model_id=state.next_model_id,
            ).where(StateRow.id == 1).execute()
            repositories.record_change(recorded)
            if is_postgres(self._db):
                notify_on_commit(self._db, recorded.revision)
            self._db.commit()
        self._open = False
        self.committed = recorded
        return recorded

    # -- snapshot reads ------------------------------------------------------------------------

    def catalog(self) -> Catalog:
        aliases = repositories.aliases_of()
        models = {
            row.id: repositories.to_model(row, aliases.get(row.id, ()))
            for row in ModelRow.select().order_by(ModelRow.id)
        }
        slots = {
            row.name: repositories.to_slot(row)
            for row in SlotRow.select().order_by(SlotRow.position)
        }
        global_models = dict(
            GlobalSettingRow.select(GlobalSettingRow.slot, GlobalSettingRow.model).tuples()
        )
        return Catalog(
            models=MappingProxyType(models),
            slots=MappingProxyType(slots),
            global_models=MappingProxyType(global_models),
            global_revision=self.global_revision,
        )

    def accounts(
        self, slots: Sequence[str], changed_after: int | None = None
    ) -> dict[str, AccountRecord]:
        if changed_after is None:
            return repositories.shared(repositories.all_accounts(self._db, slots))
        return repositories.shared(
            repositories.accounts_changed_after(self._db, slots, changed_after)
        )


class PeeweeStore:
    """The database behind the daemon: write units and read units."""

    def __init__(self, db: Database) -> None:
        self.db = db
        database.initialize(db)

    def write(self, origin: Origin) -> PeeweeUnit:
        return PeeweeUnit(self.db, origin)

    @contextmanager
    def read(self) -> Iterator[PeeweeUnit]:
        with PeeweeUnit(self.db, None) as unit:
            yield unit

    def prune_changes(self, upto: int, batch: int = 10_000) -> int:
        """Delete the recorded changes at revisions up to `upto`, with their subjects and the
        overrides they wrote, `batch` changes per transaction; returns how many."""
        pruned = 0
        while True:
            with storage_errors():
                ensure_connected(self.db)
                with self.db.atomic():
                    revisions = [
                        revision
                        for (revision,) in ChangeRow.select(ChangeRow.revision)
                        .where(ChangeRow.revision <= upto)
                        .order_by(ChangeRow.revision)
                        .limit(batch)
                        .tuples()
                    ]
                    if not revisions:
                        return pruned
                    low, high = revisions[0], revisions[-1]
                    for table in (ChangeSubjectRow, OverrideChangeRow, ChangeRow):
                        table.delete().where(table.revision.between(low, high)).execute()
            pruned += len(revisions)

    def close(self) -> None:
        self.db.close()
