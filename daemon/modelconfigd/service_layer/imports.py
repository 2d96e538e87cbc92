"""Bulk import of account overrides: every row checked like SetModel, then one transaction.

Rows are checked against the snapshot while they stream in, so the write lock is held only for
the writing; in the transaction the distinct models the rows name are checked again against the
database (ABORTED if the catalog changed meanwhile). Per row only a small tuple is kept: a
million rows stay within a few hundred megabytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..domain import rules, validation
from ..domain.errors import (
    Aborted,
    InvalidArgument,
    ModelConfigError,
    ModelInactive,
    ModelNotFound,
)
from ..domain.model import Model, Slot
from ..domain.state import Catalog
from .write_steps import ModelRef, not_found


@dataclass(frozen=True)
class ImportRow:
    """One override to import; `line` names it in errors."""

    line: int
    account_id: str
    slot: str
    ref: ModelRef


@dataclass(frozen=True)
class CheckedImport:
    """Rows that passed every check against one catalog, ready to write."""

    records: list[tuple[str, str, int | None]]
    accounts: int
    models: Mapping[ModelRef, Model]  # what each reference named
    pairs: frozenset[tuple[str, int]]  # every (slot, model id) the rows choose


def find(catalog: Catalog, ref: ModelRef) -> Model:
    """The model a reference names in a catalog; ModelNotFound if none."""
    if ref.model_id is not None:
        model = catalog.models.get(ref.model_id)
    else:
        model = catalog.find(ref.model_name or "")
    if model is None:
        raise not_found(ref)
    return model


def _fit_error(slot: Slot, model: Model, inactive_ok: bool = False) -> ModelConfigError | None:
    try:
        rules.check_fits(slot, model)
    except ModelInactive as exc:
        return None if inactive_ok else exc
    except ModelConfigError as exc:
        return exc
    return None


def check_rows(
    catalog: Catalog, rows: Iterable[ImportRow], *, whole: bool = False
) -> CheckedImport:
    """Every row checked; InvalidArgument (or the first bad row's error) naming all bad rows.

    `whole`: the rows are every override of a whole configuration, so there may be none, and an
    override of an inactive model is kept (and skipped by resolution) as a deactivation keeps it.
    """
    slots = {name: name for name in catalog.slots}  # one shared string per slot
    seen: dict[str, set[str]] = {name: set() for name in slots}
    chosen: dict[ModelRef, Model] = {}
    fits: dict[tuple[str, int], ModelConfigError | None] = {}
    records: list[tuple[str, str, int | None]] = []
    bad: list[tuple[int, ModelConfigError]] = []
    for row in rows:
        try:
            account_id = validation.account_id(row.account_id)
            slot = slots.get(row.slot) or validation.slot_name(row.slot, slots)
            if account_id in seen[slot]:
                raise InvalidArgument.field(
                    "slot",
                    f"account {account_id!r} slot {slot!r} appears twice",
                    reason="DUPLICATE_ROW",
                )
            model = chosen.get(row.ref) or chosen.setdefault(
                row.ref, find(catalog, row.ref.validated())
            )
            if (slot, model.id) not in fits:
                fits[slot, model.id] = _fit_error(catalog.slots[slot], model, whole)
            if fits[slot, model.id] is not None:
                raise fits[slot, model.id]
        except ModelConfigError as exc:
            bad.append((row.line, exc))
            continue
        seen[slot].add(account_id)
        records.append((account_id, slot, model.id))
    if bad:
        raise bad[0][1].for_rows(sorted(bad, key=lambda pair: pair[0]))
    if not records and not whole:
        raise InvalidArgument.field("rows", "the import has no rows", reason="EMPTY_IMPORT")
    accounts = len(set().union(*seen.values()))
    return CheckedImport(records, accounts, chosen, frozenset(p for p, e in fits.items() if not e))


def recheck(catalog: Catalog, checked: CheckedImport) -> None:
    """ABORTED unless every reference still names the same model and every pair still fits."""
    changed = Aborted(
        "the catalog changed while the import was being checked; run it again",
        reason="CATALOG_CHANGED",
    )
    for ref, model in checked.models.items():
        try:
            if find(catalog, ref).id != model.id:
                raise changed
        except ModelNotFound:
            raise changed from None
    for slot, model_id in checked.pairs:
        current = catalog.models.get(model_id)
        if (
            slot not in catalog.slots
            or current is None
            or _fit_error(catalog.slots[slot], current) is not None
        ):
            raise changed
