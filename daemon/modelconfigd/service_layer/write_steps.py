"""The steps of the writes, over a unit of work: shared by the use cases and by their reverts.

Each step checks what its rules require against the unit (never the snapshot), makes the change
and returns its description for `commit`, or None when there is nothing to change. None of
them commits: the use case does, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..domain import changes, rules, validation
from ..domain.changes import Change, Scope
from ..domain.errors import (
    AlreadyExists,
    EtagMismatch,
    InvalidArgument,
    ModelNotFound,
)
from ..domain.model import Model, Slot
from ..domain.state import account_etag, global_etag
from .unit_of_work import UnitOfWork


@dataclass(frozen=True)
class ModelRef:
    """A model named by id or by name/alias: exactly one of the two is set."""

    model_id: int | None = None
    model_name: str | None = None

    def validated(self, id_field: str = "model_id", name_field: str = "model_name") -> ModelRef:
        if self.model_id is not None:
            validation.model_id(self.model_id, id_field)
        elif self.model_name is not None:
            validation.model_name(self.model_name, name_field)
        else:
            raise InvalidArgument.field(
                "model_ref", f"set {id_field} or {name_field}", reason="MODEL_REF_REQUIRED"
            )
        return self

    def __str__(self) -> str:
        if self.model_id is not None:
            return f"id {self.model_id}"
        return f"name or alias {self.model_name!r}"


def not_found(ref: ModelRef) -> ModelNotFound:
    if ref.model_id is not None:
        meta: dict[str, object] = {"model_id": ref.model_id}
    else:
        meta = {"model_name": ref.model_name}
    return ModelNotFound(f"no model has {ref}", metadata=meta)


def find_model(uow: UnitOfWork, ref: ModelRef) -> Model:
    model = uow.models.get(ref.model_id) if ref.model_id else uow.models.find(ref.model_name or "")
    if model is None:
        raise not_found(ref)
    return model


def existing_model(uow: UnitOfWork, model_id: int) -> Model:
    return find_model(uow, ModelRef(model_id=model_id))


def known_slot(uow: UnitOfWork, name: str, field: str = "slot") -> Slot:
    """The slot; an unknown name is a malformed request (INVALID_ARGUMENT), as it always was."""
    slot = uow.slots.get(name)
    if slot is None:
        validation.slot_name(name, uow.slots.names(), field)
    assert slot is not None
    return slot


# -- settings ----------------------------------------------------------------------------------


def etag_of(uow: UnitOfWork, scope: Scope, account_id: str) -> str:
    if scope is Scope.GLOBAL:
        return global_etag(uow.global_revision)
    return account_etag(uow.overrides.account_revision(account_id))


def etag_after(scope: Scope, revision: int) -> str:
    """The scope's etag once a change to it committed at `revision`."""
    return global_etag(revision) if scope is Scope.GLOBAL else account_etag(revision)


def check_etag(uow: UnitOfWork, scope: Scope, account_id: str, etag: str) -> str:
    """The scope's current etag; EtagMismatch when the caller's is stale (empty skips the check)."""
    current = etag_of(uow, scope, account_id)
    if etag and etag != current:
        what = "global settings" if scope is Scope.GLOBAL else f"account {account_id!r}"
        raise EtagMismatch(
            f"etag {etag!r} is stale: the {what} changed since it was read (now {current!r}); "
            "read again and retry",
            metadata={"etag": etag, "current_etag": current, "account_id": account_id},
        )
    return current


def current_setting(uow: UnitOfWork, scope: Scope, slot: str, account_id: str) -> int | None:
    if scope is Scope.GLOBAL:
        return uow.settings.get(slot)
    return uow.overrides.get(account_id, slot)


def write_setting(
    uow: UnitOfWork, scope: Scope, slot: Slot, account_id: str, model: Model | None
) -> Change | None:
    """Select `model` for the slot in the scope (None: remove the selection)."""
    if model is not None:
        rules.check_fits(slot, model)
    before = current_setting(uow, scope, slot.name, account_id)
    after = None if model is None else model.id
    if before == after:
        return None
    if scope is Scope.GLOBAL:
        uow.settings.set(slot.name, after)
    else:
        uow.overrides.set(account_id, slot.name, after)
    return changes.setting_changed(scope, slot.name, account_id, before, after)


# -- models ------------------------------------------------------------------------------------


def refuse_taken_names(uow: UnitOfWork, model: Model) -> None:
    taken = uow.models.names_taken(model.names, except_model=model.id or None)
    if taken:
        name, owner = next(iter(taken.items()))
        raise AlreadyExists(
            f"name {name!r} is already the name or an alias of model id {owner}",
            reason="MODEL_NAME_TAKEN",
            metadata={"name": name, "model_id": owner},
        )


def check_successor(uow: UnitOfWork, model: Model) -> None:
    """The successor a model names exists and could replace it."""
    if model.successor_id is not None:
        successor = uow.models.get(model.successor_id)
        if successor is None:
            raise ModelNotFound(
                f"model.successor_id: no model has id {model.successor_id}",
                metadata={"model_id": model.successor_id, "field": "model.successor_id"},
            )
        rules.check_successor(model, successor)


def add_model(uow: UnitOfWork, draft: Model) -> tuple[Model, Change]:
    """Store a new model (id 0: the next id; another: a deleted model restored)."""
    refuse_taken_names(uow, draft)
    check_successor(uow, draft)
    model = uow.models.add(draft)
    return model, changes.model_created(model)


def update_model(
    uow: UnitOfWork, model_id: int, fields: Mapping[str, Any]
) -> tuple[Model, Change | None]:
    """Change some fields of a model (raw values, as validation.build_model takes them)."""
    old = existing_model(uow, model_id)
    new = validation.build_model(model_id, {**validation.model_fields(old), **fields})
    # Compared as fields, not as Models: a price retyped as 0.150 for 0.15 is a change.
    if validation.model_fields(new) == validation.model_fields(old):
        return old, None
    refuse_taken_names(uow, new)
    if (new.successor_id, new.provider, new.model_type) != (
        old.successor_id,
        old.provider,
        old.model_type,
    ):
        check_successor(uow, new)
    rules.check_update_allowed(old, new, uow.models.usage(model_id, sample=10))
    uow.models.update(new)
    return new, changes.model_updated(old, new)


def delete_model(uow: UnitOfWork, model_id: int) -> Change:
    model = existing_model(uow, model_id)
    rules.check_deletable(model, uow.models.usage(model_id, sample=10))
    uow.models.delete(model_id)
    return changes.model_deleted(model)


# -- slots -------------------------------------------------------------------------------------


def check_default(uow: UnitOfWork, slot: Slot) -> Model:
    """The slot's default model, which must exist and be an active model of its kind."""
    model = existing_model(uow, slot.default_model_id)
    rules.check_fits(slot, model)
    return model


def add_slot(uow: UnitOfWork, slot: Slot) -> Change:
    if uow.slots.get(slot.name) is not None:
        raise AlreadyExists(
            f"slot {slot.name!r} already exists",
            reason="SLOT_NAME_TAKEN",
            metadata={"slot": slot.name},
        )
    check_default(uow, slot)
    uow.slots.add(slot)
    return changes.slot_created(slot)


def update_slot(
    uow: UnitOfWork, old: Slot, fields: Mapping[str, Any]
) -> tuple[Slot, Change | None]:
    new = replace(old, **fields)
    if new == old:
        return old, None
    if (new.required_provider, new.required_model_type) != (
        old.required_provider,
        old.required_model_type,
    ):
        rules.check_slot_update_allowed(old, new, uow.slots.holders(old.name))
    if (new.default_model_id, new.required_provider, new.required_model_type) != (
        old.default_model_id,
        old.required_provider,
        old.required_model_type,
    ):
        check_default(uow, new)
    uow.slots.update(new)
    return new, changes.slot_updated(old, new)
