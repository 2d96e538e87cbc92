"""Set-based SQL for writing many overrides at once (imports and their reverts).

At a million rows, building Peewee queries would cost more than the database's own work: the
rows go into a temporary table (COPY on PostgreSQL, executemany on SQLite), and a few
statements then record which of them differ from what is stored, write those, and bump the
revisions of the accounts they belong to.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from peewee import Database

from ..service_layer.unit_of_work import Applied, OverrideRow
from .database import is_postgres

T = TypeVar("T")

_RECORD_CHANGED = (
    "INSERT INTO override_change (revision, account_id, slot, before_model_id, after_model_id)"
    " SELECT {p}, i.account_id, i.slot, o.model_id, i.model_id FROM {tmp} i"
    " LEFT JOIN account_override o ON o.account_id = i.account_id AND o.slot = i.slot"
    " WHERE o.model_id {distinct} i.model_id"
    " ORDER BY i.account_id, i.slot"  # key order: index pages are filled in sequence
)
_DELETE_CLEARED = (
    "DELETE FROM account_override WHERE (account_id, slot) IN (SELECT account_id, slot"
    " FROM override_change WHERE revision = {p} AND after_model_id IS NULL)"
)
_UPSERT_SET = (
    "INSERT INTO account_override (account_id, slot, model_id)"
    " SELECT account_id, slot, after_model_id FROM override_change"
    " WHERE revision = {p} AND after_model_id IS NOT NULL ORDER BY account_id, slot"
    " ON CONFLICT (account_id, slot) DO UPDATE SET model_id = excluded.model_id"
)
_BUMP_ACCOUNTS = (
    "INSERT INTO account (account_id, revision)"
    " SELECT DISTINCT account_id, {p} FROM override_change WHERE revision = {p}"
    " ORDER BY account_id"
    " ON CONFLICT (account_id) DO UPDATE SET revision = excluded.revision"
)
_ACCOUNTS = "SELECT count(DISTINCT account_id) FROM override_change WHERE revision = {p}"
_SLOTS = "SELECT DISTINCT slot FROM override_change WHERE revision = {p}"
_MODELS = (
    "SELECT before_model_id FROM override_change WHERE revision = {p}"
    " UNION SELECT after_model_id FROM override_change WHERE revision = {p}"
)
_CHANGED_AFTER = (
    "SELECT max(later.revision) FROM override_change this JOIN override_change later"
    " ON later.account_id = this.account_id AND later.slot = this.slot"
    " AND later.revision > this.revision WHERE this.revision = {p}"
)


def _chunks(rows: Sequence[T], size: int = 10_000) -> Iterator[Sequence[T]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _load_rows(db: Database, rows: Sequence[OverrideRow]) -> str:
    """Put the rows into a temporary table, dropped with the transaction; returns its name."""
    if is_postgres(db):
        with db.connection().cursor() as cursor:
            cursor.execute(
                "CREATE TEMPORARY TABLE import_row (account_id TEXT COLLATE \"C\","
                " slot TEXT, model_id BIGINT) ON COMMIT DROP"
            )
            with cursor.copy("COPY import_row (account_id, slot, model_id) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return "import_row"
    cursor = db.cursor()
    cursor.execute("CREATE TEMP TABLE import_row (account_id TEXT, slot TEXT, model_id INTEGER)")
    for chunk in _chunks(rows):
        cursor.executemany("INSERT INTO temp.import_row VALUES (?, ?, ?)", chunk)
    return "temp.import_row"


def apply_overrides(db: Database, rows: Sequence[OverrideRow], revision: int) -> Applied:
    """Write the rows that differ from what is stored, recorded at `revision`."""
    p = db.param
    table = _load_rows(db, rows)
    distinct = "IS DISTINCT FROM" if is_postgres(db) else "IS NOT"
    changed = db.execute_sql(
        _RECORD_CHANGED.format(p=p, tmp=table, distinct=distinct), (revision,)
    ).rowcount
    if not is_postgres(db):
        db.execute_sql("DROP TABLE temp.import_row")
    if not changed:
        return Applied(0, 0, frozenset(), frozenset())
    db.execute_sql(_DELETE_CLEARED.format(p=p), (revision,))
    db.execute_sql(_UPSERT_SET.format(p=p), (revision,))
    db.execute_sql(_BUMP_ACCOUNTS.format(p=p), (revision, revision))
    accounts = db.execute_sql(_ACCOUNTS.format(p=p), (revision,)).fetchone()[0]
    slots = frozenset(slot for (slot,) in db.execute_sql(_SLOTS.format(p=p), (revision,)))
    models = frozenset(
        model_id
        for (model_id,) in db.execute_sql(_MODELS.format(p=p), (revision, revision))
        if model_id is not None
    )
    return Applied(changed, accounts, models, slots)


def overrides_changed_after(db: Database, revision: int) -> int | None:
    """The latest revision after `revision` that wrote any override `revision` wrote."""
    return db.execute_sql(_CHANGED_AFTER.format(p=db.param), (revision,)).fetchone()[0]
