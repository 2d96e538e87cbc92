"""What the use cases need from storage: repositories inside a unit of work, as Protocols.

A write runs in one `UnitOfWork`: it begins by taking the write lock (writers are serialized),
reads and changes through the repositories, and ends with `commit(change)`, which records the
change with the next revision in the same transaction, or without it, which rolls back. Every
override the unit writes is also kept in the override history at that revision, so what an
import or a setting replaced can be restored. The Peewee store implements this for SQLite and
PostgreSQL; the unit tests use an in-memory one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..domain.changes import Change, ChangeFilter, ChangeKind, Origin, Scope
from ..domain.model import Model, Slot
from ..domain.rules import Usage
from ..domain.state import AccountRecord, Catalog

# (account id, slot, model id or None to clear)
OverrideRow = tuple[str, str, int | None]


@dataclass(frozen=True)
class OverrideHistoryRow:
    """One override as one change left it."""

    account_id: str
    slot: str
    before: int | None
    after: int | None


@dataclass(frozen=True)
class AccountOverrides:
    """One account's overrides, in slot order, and the revision that last changed them."""

    account_id: str
    overrides: tuple[tuple[str, int], ...]
    revision: int


@dataclass(frozen=True)
class Applied:
    """What a bulk write of overrides changed (rows equal to what was stored change nothing)."""

    rows: int
    accounts: int
    models: frozenset[int]
    slots: frozenset[str]


class ModelRepository(Protocol):
    def get(self, model_id: int) -> Model | None: ...

    def find(self, name: str) -> Model | None:
        """The model with this name or alias."""

    def names_taken(self, names: Iterable[str], except_model: int | None) -> dict[str, int]:
        """Which of these names are a name or alias of another model, and whose."""

    def add(self, model: Model) -> Model:
        """Store a new model; id 0 takes the next id, another id is kept (a restored model)."""

    def update(self, model: Model) -> None: ...

    def delete(self, model_id: int) -> None: ...

    def usage(self, model_id: int, sample: int) -> Usage:
        """What uses the model, with up to `sample` of the accounts."""


class SlotRepository(Protocol):
    def get(self, name: str) -> Slot | None: ...

    def names(self) -> list[str]:
        """Every slot's name, in slot order."""

    def add(self, slot: Slot) -> None:
        """Store a new slot after the others."""

    def update(self, slot: Slot) -> None: ...

    def holders(self, name: str) -> list[str]:
        """What uses the slot (its global setting, account overrides), described; empty if none."""


class GlobalSettingRepository(Protocol):
    def get(self, slot: str) -> int | None:
        """The model id of the slot's global setting; None when it has none."""

    def set(self, slot: str, model_id: int | None) -> None:
        """Set the slot's global setting; None removes it."""


class OverrideRepository(Protocol):
    def get(self, account_id: str, slot: str) -> int | None: ...

    def account_revision(self, account_id: str) -> int:
        """The revision that last changed the account's overrides; 0 if none ever did."""

    def set(self, account_id: str, slot: str, model_id: int | None) -> None:
        """Set (None: remove) one override, recorded in the history at the unit's revision."""

    def apply(self, rows: Sequence[OverrideRow]) -> Applied:
        """Write many overrides (rows unique per account and slot); only the rows that differ
        from what is stored are written and recorded in the history."""

    def history(self, revision: int) -> Iterator[OverrideHistoryRow]:
        """The overrides the change at `revision` wrote."""

    def history_page(
        self, revision: int, after: tuple[str, str] | None, limit: int
    ) -> list[OverrideHistoryRow]:
        """Up to `limit` of the overrides the change at `revision` wrote, in (account, slot)
        order, after the (account, slot) pair `after`."""

    def changed_after(self, revision: int) -> int | None:
        """The latest revision after `revision` that wrote any override `revision` wrote."""

    def last_change(self, account_id: str, slot: str, after: int) -> int | None:
        """The latest revision after `after` that wrote this override."""

    def accounts_using(self, model_id: int, after: str, limit: int) -> list[str]:
        """Accounts whose overrides use the model, in id order, after the account `after`."""

    def selecting(self, model_id: int) -> list[tuple[str, str]]:
        """Every (account, slot) whose override selects the model."""

    def pairs(self) -> set[tuple[str, str]]:
        """Every (account, slot) with an override."""

    def choices(self) -> set[tuple[str, int]]:
        """Every distinct (slot, model id) an override selects."""

    def accounts_page(
        self, slot: str, model_id: int, after: str, limit: int
    ) -> list[AccountOverrides]:
        """Up to `limit` accounts after `after` (in id order) with an override (of `slot`,
        selecting `model_id`, when given), each with every override it has."""


class ChangeLog(Protocol):
    def get(self, revision: int) -> Change | None: ...

    def last_change(
        self,
        after: int,
        kinds: Iterable[ChangeKind],
        *,
        scope: Scope | None = None,
        slot: str = "",
        model_id: int = 0,
    ) -> int | None:
        """The latest revision after `after` of a change of these kinds matching the rest."""

    def last_about(
        self, after: int, kinds: Iterable[ChangeKind], subjects: Iterable[str]
    ) -> int | None:
        """The latest revision after `after` of those kinds concerning any of the subjects
        (`model:7`, `slot:openai_model`)."""

    def page(self, where: ChangeFilter, before: int, limit: int) -> list[Change]:
        """Up to `limit` changes matching `where` with revisions below `before`, newest first."""

    def between(self, after: int, upto: int, limit: int) -> list[Change]:
        """Up to `limit` whole changes after `after` and at most `upto`, oldest first."""

    def first_at(self, moment: datetime) -> int | None:
        """The first revision committed at or after `moment`, if any."""

    def since(self, revision: int) -> list[Change]:
        """Every change after `revision`, oldest first (kind, scope and time only: for
        replicas)."""


class ReadUnit(Protocol):
    """A consistent view of the database: every read in it sees one committed revision."""

    models: ModelRepository
    slots: SlotRepository
    settings: GlobalSettingRepository
    overrides: OverrideRepository
    changes: ChangeLog

    @property
    def revision(self) -> int:
        """The last committed revision this unit sees."""

    @property
    def global_revision(self) -> int:
        """The revision that last changed the global settings or slots."""

    def catalog(self) -> Catalog:
        """Models, slots and global settings."""

    def accounts(
        self, slots: Sequence[str], changed_after: int | None = None
    ) -> dict[str, AccountRecord]:
        """Every account's overrides as records in `slots` order, or those changed after a
        revision; equal records are one shared tuple."""


class UnitOfWork(ReadUnit, Protocol):
    def __enter__(self) -> UnitOfWork: ...

    def __exit__(self, *exc: object) -> None:
        """Roll back unless committed."""

    def commit(self, change: Change) -> Change:
        """Record `change` at the next revision, with the unit's origin and the time, and commit
        everything; returns the change as recorded."""

    @property
    def committed(self) -> Change | None:
        """The change this unit committed, once it has."""


class Store(Protocol):
    def write(self, origin: Origin) -> UnitOfWork:
        """A unit of work for one write on behalf of `origin`."""

    def read(self) -> AbstractContextManager[ReadUnit]:
        """A read-only unit (never blocks writers; rolled back at the end)."""

    def prune_changes(self, upto: int) -> int:
        """Delete the recorded changes at revisions up to `upto` (the audit trail's retention),
        with what only they hold; returns how many."""
