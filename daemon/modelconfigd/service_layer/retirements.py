"""Retiring a model: every setting that selects it moves to its successor, in one change.

A retirement moves the global settings, the slot defaults and the account overrides that select
the model, then deactivates the model and names its successor. Its revert moves exactly those
settings back and restores the model; both are recorded as MODEL_RETIRED changes, so a revert
can itself be reverted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..domain import rules
from ..domain.changes import Change, ChangeKind, Moved, Scope, model_retired
from ..domain.model import Model, Slot
from . import write_steps
from .unit_of_work import UnitOfWork

_MODEL_KINDS = (
    ChangeKind.MODEL_CREATED,
    ChangeKind.MODEL_UPDATED,
    ChangeKind.MODEL_DELETED,
    ChangeKind.MODEL_RETIRED,
)


@dataclass(frozen=True)
class Retirement:
    """What a retirement did (or, validated only, would do); `change` is None when nothing
    needed to change (the model was retired to that successor already and nothing used it)."""

    change: Change | None
    model: Model
    successor: Model
    moved: Moved


def retire(uow: UnitOfWork, model_id: int, successor_id: int) -> Retirement:
    """Move everything that selects the model to its successor, deactivate it, name it."""
    old = write_steps.existing_model(uow, model_id)
    successor = write_steps.existing_model(uow, successor_id)
    rules.check_successor(old, successor)
    usage = uow.models.usage(model_id, sample=0)
    overrides = uow.overrides.selecting(model_id)
    slots = {
        name: write_steps.known_slot(uow, name)
        for name in {*usage.global_slots, *usage.default_slots, *(s for _, s in overrides)}
    }
    rules.check_fits_every(sorted(slots.values(), key=lambda s: s.name), successor)
    rules.check_active(successor)  # also when nothing selects the model yet
    moved = _move(
        uow,
        Moved(old.id, successor.id, usage.global_slots, usage.default_slots),
        [(account, slot, successor.id) for account, slot in overrides],
    )
    new, updated = write_steps.update_model(
        uow, old.id, {"is_active": False, "successor_id": successor.id}
    )
    if updated is None and not (moved.override_rows or moved.global_slots or moved.default_slots):
        return Retirement(None, new, successor, moved)
    return Retirement(model_retired(old, new, moved), new, successor, moved)


def later_change(uow: UnitOfWork, change: Change) -> int | None:
    """The latest later revision that changed anything the retirement (or its revert) moved."""
    assert change.before is not None and change.after is not None
    after = change.revision
    found = [
        uow.changes.last_change(after, _MODEL_KINDS, model_id=change.model_id),
        # Another retirement may have moved the same settings on: refused unless forced.
        uow.changes.last_change(after, [ChangeKind.MODEL_RETIRED]),
        *(
            uow.changes.last_change(after, [ChangeKind.SETTING], scope=Scope.GLOBAL, slot=slot)
            for slot in change.after["global_slots"]
        ),
        *(
            uow.changes.last_change(after, [ChangeKind.SLOT_UPDATED], slot=slot)
            for slot in change.after["default_slots"]
        ),
        uow.overrides.changed_after(after) if change.after["rows"] else None,
    ]
    return max((r for r in found if r is not None), default=None)


def restore(uow: UnitOfWork, change: Change) -> Change | None:
    """Undo a retirement (or a revert of one): move what it moved back, restore the model."""
    assert change.before is not None and change.after is not None
    old = write_steps.existing_model(uow, change.model_id)
    fields = change.before["model"]
    # Reactivate before the settings come back (they accept only active models); deactivate
    # only once they have left.
    reactivating = fields.get("is_active") is True
    if reactivating:
        write_steps.update_model(uow, old.id, fields)
    back_to = write_steps.existing_model(uow, change.before["model_id"])
    globals_ = tuple(change.after["global_slots"])
    defaults = tuple(change.after["default_slots"])
    involved = {*globals_, *defaults}
    rules.check_fits_every([write_steps.known_slot(uow, s) for s in involved], back_to)
    rows = [(h.account_id, h.slot, h.before) for h in uow.overrides.history(change.revision)]
    override_slots = {slot for _, slot, model in rows if model is not None}
    # Overrides of an inactive model were kept (and skipped) before: they may come back so.
    rules.check_fits_every(
        [write_steps.known_slot(uow, s) for s in override_slots], back_to, inactive_ok=True
    )
    moved = _move(uow, Moved(change.after["model_id"], back_to.id, globals_, defaults), rows)
    if not reactivating:
        write_steps.update_model(uow, old.id, fields)
    new = write_steps.existing_model(uow, old.id)
    if new == old and not moved.override_rows and not (globals_ or defaults):
        return None
    return model_retired(old, new, moved)


def _move(uow: UnitOfWork, moved: Moved, rows: list[tuple[str, str, int | None]]) -> Moved:
    """Point the global settings and slot defaults at `moved.to_model`, write the overrides."""
    for name in moved.global_slots:
        uow.settings.set(name, moved.to_model)
    for name in moved.default_slots:
        slot: Slot = write_steps.known_slot(uow, name)
        uow.slots.update(replace(slot, default_model_id=moved.to_model))
    applied = uow.overrides.apply(rows) if rows else None
    if applied is None:
        return moved
    return replace(
        moved,
        override_rows=applied.rows,
        override_accounts=applied.accounts,
        override_slots=applied.slots,
    )

