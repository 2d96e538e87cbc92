"""Reverting a recorded change: a new change that restores its `before`, by the original rules.

A revert is refused when what the change touched has changed since (unless forced), since it
would silently undo that later change too. Restoring goes through the same steps as the
original write, so every rule holds: a model to restore that is now inactive is refused, a
deleted model comes back only if its names are free, and so on.
"""

from __future__ import annotations

from collections.abc import Callable

from ..domain import changes, rules
from ..domain.changes import Change, ChangeKind, Scope
from ..domain.errors import ChangedSince, NotRevertible, PreconditionViolation
from ..domain.model import ModelType
from . import retirements, write_steps
from .unit_of_work import UnitOfWork

_MODEL_KINDS = (ChangeKind.MODEL_CREATED, ChangeKind.MODEL_UPDATED, ChangeKind.MODEL_DELETED)
_NOT_REVERTIBLE = {
    ChangeKind.SEED: "the seed cannot be reverted",
    ChangeKind.CATALOG: "it was recorded before the audit trail, which keeps what it changed",
    ChangeKind.SLOT_CREATED: "slots cannot be deleted; change its default or name instead",
    ChangeKind.CONFIGURATION_APPLIED: "apply the configuration exported before it instead",
}


def revert(uow: UnitOfWork, change: Change, force: bool) -> Change | None:
    """Restore what `change` replaced; None when everything already holds its earlier value."""
    why = _NOT_REVERTIBLE.get(change.kind)
    if why is None and change.before is None and change.after is None:
        why = "it was recorded before the audit trail, which keeps what it changed"
    if why is not None:
        raise NotRevertible(
            f"revision {change.revision} ({change.kind.value}) cannot be reverted: {why}",
            metadata={"revision": change.revision, "kind": change.kind.value},
        )
    later = _later_change(uow, change)
    if later is not None and not force:
        message = (
            f"revision {later} changed what revision {change.revision} changed; reverting "
            f"would undo it too: revert revision {later} first, or pass force"
        )
        raise ChangedSince(
            message,
            violations=[PreconditionViolation("CHANGED_SINCE", f"changes/{later}", message)],
            metadata={"revision": change.revision, "later_revision": later},
        )
    restored = _RESTORE[change.kind](uow, change)
    return None if restored is None else restored.reverting(change.revision)


# Changes that move many settings at once: a later one touching what a change touched makes
# reverting that change undo part of it too.
_SWEEPING = (ChangeKind.MODEL_RETIRED, ChangeKind.CONFIGURATION_APPLIED)


def _later_change(uow: UnitOfWork, change: Change) -> int | None:
    own = _later_change_of_its_kind(uow, change)
    subjects = [f"model:{change.model_id}"] if change.model_id else []
    if change.slot and not (change.kind is ChangeKind.SETTING and change.scope is Scope.ACCOUNT):
        subjects.append(f"slot:{change.slot}")  # an override is checked by its own history
    if change.kind is ChangeKind.MODEL_RETIRED and change.after:
        subjects += [
            f"slot:{s}" for s in (*change.after["global_slots"], *change.after["default_slots"])
        ]
        subjects.append(f"model:{change.after['model_id']}")
    sweeping = uow.changes.last_about(change.revision, _SWEEPING, subjects)
    return max((r for r in (own, sweeping) if r is not None), default=None)


def _later_change_of_its_kind(uow: UnitOfWork, change: Change) -> int | None:
    after = change.revision
    if change.kind is ChangeKind.SETTING:
        if change.scope is Scope.GLOBAL:
            return uow.changes.last_change(
                after, [ChangeKind.SETTING], scope=Scope.GLOBAL, slot=change.slot
            )
        return uow.overrides.last_change(change.account_id, change.slot, after)
    if change.kind is ChangeKind.IMPORT:
        return uow.overrides.changed_after(after)
    if change.kind is ChangeKind.MODEL_RETIRED:
        return retirements.later_change(uow, change)
    if change.kind in _MODEL_KINDS:
        kinds = (*_MODEL_KINDS, ChangeKind.MODEL_RETIRED)
        return uow.changes.last_change(after, kinds, model_id=change.model_id)
    return uow.changes.last_change(after, [ChangeKind.SLOT_UPDATED], slot=change.slot)


def _restore_setting(uow: UnitOfWork, change: Change) -> Change | None:
    assert change.scope is not None and change.before is not None
    slot = write_steps.known_slot(uow, change.slot)
    model_id = change.before["model_id"]
    model = None if model_id is None else write_steps.existing_model(uow, model_id)
    return write_steps.write_setting(uow, change.scope, slot, change.account_id, model)


def _restore_import(uow: UnitOfWork, change: Change) -> Change | None:
    rows = [(h.account_id, h.slot, h.before) for h in uow.overrides.history(change.revision)]
    for slot_name, model_id in {(slot, model) for _, slot, model in rows if model is not None}:
        slot = write_steps.known_slot(uow, slot_name)
        rules.check_fits(slot, write_steps.existing_model(uow, model_id))
    applied = uow.overrides.apply(rows)
    if not applied.rows:
        return None
    return changes.imported(applied.rows, applied.accounts, applied.models, applied.slots)


def _model_fields(values: changes.Values) -> dict[str, object]:
    """Recorded model values as the raw fields the model steps take."""
    fields = dict(values)
    if "model_type" in fields:
        fields["model_type"] = ModelType(fields["model_type"])
    return fields


def _restore_updated_model(uow: UnitOfWork, change: Change) -> Change | None:
    assert change.before is not None
    return write_steps.update_model(uow, change.model_id, _model_fields(change.before))[1]


def _remove_created_model(uow: UnitOfWork, change: Change) -> Change | None:
    if uow.models.get(change.model_id) is None:
        return None  # deleted since (a forced revert): nothing left to remove
    return write_steps.delete_model(uow, change.model_id)


def _restore_deleted_model(uow: UnitOfWork, change: Change) -> Change | None:
    assert change.before is not None
    if uow.models.get(change.model_id) is not None:  # restored since (a forced revert)
        return _restore_updated_model(uow, change)
    model = changes.model_from_values(change.model_id, change.before)
    return write_steps.add_model(uow, model)[1]


def _restore_slot(uow: UnitOfWork, change: Change) -> Change | None:
    assert change.before is not None
    fields = dict(change.before)
    if "required_model_type" in fields:
        fields["required_model_type"] = ModelType(fields["required_model_type"])
    slot = write_steps.known_slot(uow, change.slot)
    return write_steps.update_slot(uow, slot, fields)[1]


_RESTORE: dict[ChangeKind, Callable[[UnitOfWork, Change], Change | None]] = {
    ChangeKind.SETTING: _restore_setting,
    ChangeKind.IMPORT: _restore_import,
    ChangeKind.MODEL_UPDATED: _restore_updated_model,
    ChangeKind.MODEL_CREATED: _remove_created_model,
    ChangeKind.MODEL_DELETED: _restore_deleted_model,
    ChangeKind.SLOT_UPDATED: _restore_slot,
    ChangeKind.MODEL_RETIRED: retirements.restore,
}
