"""Whole configurations: checked as a whole, then applied in one change.

An applied configuration is the state operators keep in a file: it is checked as the result it
describes (every default and global setting an active model its slot accepts, every override a
model of its slot's kind, every successor of the same kind), not step by step, so that models,
slots, settings and overrides can all move together in one revision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..domain import changes, rules, validation
from ..domain.changes import Change
from ..domain.errors import InvalidArgument, PreconditionViolation, SlotNotInConfiguration
from ..domain.model import Model, Slot
from ..domain.state import Catalog
from . import imports
from .imports import ImportRow
from .unit_of_work import UnitOfWork


@dataclass(frozen=True)
class ApplyOutcome:
    """What an apply changed (or would change)."""

    models_created: tuple[int, ...] = ()
    models_updated: tuple[int, ...] = ()
    models_deleted: tuple[int, ...] = ()
    slots_created: tuple[str, ...] = ()
    slots_updated: tuple[str, ...] = ()
    global_settings_changed: tuple[str, ...] = ()
    overrides_changed: int = 0
    accounts_changed: int = 0
    override_slots: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def changed(self) -> bool:
        return any(
            (
                self.models_created,
                self.models_updated,
                self.models_deleted,
                self.slots_created,
                self.slots_updated,
                self.global_settings_changed,
                self.overrides_changed,
            )
        )


def target(
    models: Sequence[Model], slots: Sequence[Slot], global_settings: Mapping[str, int]
) -> Catalog:
    """The configuration as a catalog, or the first reason it cannot be one."""
    by_id: dict[int, Model] = {}
    names: dict[str, int] = {}
    for i, model in enumerate(models):
        validation.model_id(model.id, f"configuration.models[{i}].id")
        if model.id in by_id:
            raise _duplicate(f"configuration.models[{i}].id", f"model id {model.id}")
        by_id[model.id] = model
        for name in model.names:
            if name in names:
                raise _duplicate(
                    f"configuration.models[{i}]",
                    f"name {name!r} (also model id {names[name]})",
                )
            names[name] = model.id
    by_name: dict[str, Slot] = {}
    for i, slot in enumerate(slots):
        if slot.name in by_name:
            raise _duplicate(f"configuration.slots[{i}].name", f"slot {slot.name!r}")
        by_name[slot.name] = slot
    for name, model_id in global_settings.items():
        validation.slot_name(name, by_name, "configuration.global_settings.slot")
        _known(by_id, model_id, f"the global setting of {name}")
    for slot in by_name.values():
        rules.check_fits(slot, _known(by_id, slot.default_model_id, f"slot {slot.name}'s default"))
    for name, model_id in global_settings.items():
        rules.check_fits(by_name[name], by_id[model_id])
    for model in by_id.values():
        if model.successor_id is not None:
            what = f"model {model.id}'s successor"
            rules.check_successor(model, _known(by_id, model.successor_id, what))
    return Catalog(by_id, by_name, dict(global_settings), 0)


def check_overrides(catalog: Catalog, rows: Iterable[ImportRow]) -> imports.CheckedImport:
    """The overrides of a whole configuration, checked against it."""
    return imports.check_rows(catalog, rows, whole=True)


def apply(
    uow: UnitOfWork, wanted: Catalog, overrides: list[tuple[str, str, int | None]] | None
) -> tuple[Change | None, ApplyOutcome]:
    """Make the database match `wanted` (and, unless None, the overrides); one change or none."""
    current = uow.catalog()
    left_out = [name for name in current.slots if name not in wanted.slots]
    if left_out:
        message = (
            f"slots cannot be deleted, and the configuration leaves out {', '.join(left_out)}: "
            "add them to it"
        )
        raise SlotNotInConfiguration(
            message,
            violations=[
                PreconditionViolation("SLOT", f"slots/{name}", "not in the configuration")
                for name in left_out
            ],
            metadata={"slots": ",".join(left_out)},
        )
    created = [m for i, m in wanted.models.items() if i not in current.models]
    updated = [
        m
        for i, m in wanted.models.items()
        if i in current.models
        and validation.model_fields(m) != validation.model_fields(current.models[i])
    ]
    deleted = [i for i in current.models if i not in wanted.models]
    # Names may move between models in one apply: free every name that changes first.
    for model_id in [*(m.id for m in updated if m.names != current.models[m.id].names), *deleted]:
        placeholder = f"~{model_id}"  # not a valid name: never a real one; gone by the commit
        uow.models.update(
            replace(current.models[model_id], model_name=placeholder, aliases=(), successor_id=None)
        )
    for model in created:
        uow.models.add(model)
    for model in updated:
        uow.models.update(model)
    slots_created = [s for n, s in wanted.slots.items() if n not in current.slots]
    slots_updated = [
        s for n, s in wanted.slots.items() if n in current.slots and s != current.slots[n]
    ]
    for slot in slots_created:
        uow.slots.add(slot)
    for slot in slots_updated:
        uow.slots.update(slot)
    settings_changed = [
        name
        for name in wanted.slots
        if wanted.global_models.get(name) != current.global_models.get(name)
    ]
    for name in settings_changed:
        uow.settings.set(name, wanted.global_models.get(name))
    outcome = ApplyOutcome(
        tuple(m.id for m in created),
        tuple(m.id for m in updated),
        tuple(deleted),
        tuple(s.name for s in slots_created),
        tuple(s.name for s in slots_updated),
        tuple(settings_changed),
    )
    if overrides is not None:
        outcome = _replace_overrides(uow, overrides, outcome)
    else:
        _check_kept_overrides(uow, wanted)
    for model_id in deleted:
        # What still refers to it: overrides left as they are, or (never, once checked) more.
        rules.check_deletable(current.models[model_id], uow.models.usage(model_id, sample=10))
        uow.models.delete(model_id)
    if not outcome.changed:
        return None, outcome
    summary = {
        "models_created": list(outcome.models_created),
        "models_updated": list(outcome.models_updated),
        "models_deleted": list(outcome.models_deleted),
        "slots_created": list(outcome.slots_created),
        "slots_updated": list(outcome.slots_updated),
        "global_settings_changed": list(outcome.global_settings_changed),
    }
    change = changes.configuration_applied(
        summary,
        outcome.overrides_changed,
        outcome.accounts_changed,
        outcome.override_slots,
    )
    return change, outcome


def _check_kept_overrides(uow: UnitOfWork, wanted: Catalog) -> None:
    """The overrides left as they are must fit the slots and models as the apply leaves them
    (a model's or a slot's provider or type may change). Those of a deleted model are refused
    at its deletion."""
    for slot, model_id in sorted(uow.overrides.choices()):
        model = wanted.models.get(model_id)
        if model is not None and slot in wanted.slots:
            rules.check_fits_every([wanted.slots[slot]], model, inactive_ok=True)


def _replace_overrides(
    uow: UnitOfWork, rows: list[tuple[str, str, int | None]], outcome: ApplyOutcome
) -> ApplyOutcome:
    """Every override as the configuration has it: the others cleared."""
    keep = {(account, slot) for account, slot, _ in rows}
    rows = rows + [(a, s, None) for a, s in sorted(uow.overrides.pairs() - keep)]
    if not rows:
        return outcome
    applied = uow.overrides.apply(rows)
    return replace(
        outcome,
        overrides_changed=applied.rows,
        accounts_changed=applied.accounts,
        override_slots=applied.slots,
    )


def _known(models: Mapping[int, Model], model_id: int, what: str) -> Model:
    model = models.get(model_id)
    if model is None:
        raise InvalidArgument.field(
            "configuration",
            f"{what} is model id {model_id}, which the configuration does not have",
            reason="UNKNOWN_MODEL",
            model_id=model_id,
        )
    return model


def _duplicate(field_path: str, what: str) -> InvalidArgument:
    return InvalidArgument.field(
        field_path,
        f"{what} appears twice in the configuration",
        reason="DUPLICATE_IN_CONFIGURATION",
    )
