"""The constraints writes must respect: what a slot accepts and what a model in use may not lose."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import (
    FailedPrecondition,
    ModelInactive,
    ModelInUse,
    ModelTypeMismatch,
    PreconditionViolation,
    ProviderMismatch,
    SlotInUse,
    SuccessorMismatch,
)
from .model import Model, Slot


@dataclass(frozen=True)
class Usage:
    """What refers to one model: global settings, slot defaults and account overrides.

    `account_ids` is a sample (or a page) of the `account_override_count` accounts.
    """

    global_slots: tuple[str, ...]
    default_slots: tuple[str, ...]
    account_override_count: int
    account_ids: tuple[str, ...]
    # The models that name it as their successor.
    successor_of: tuple[int, ...] = ()

    def holders(self, *, overrides: bool = True) -> list[PreconditionViolation]:
        """One violation per kind of holder, for a FAILED_PRECONDITION that names them."""
        found = [
            PreconditionViolation("GLOBAL_SETTING", slot, f"the global setting of {slot} uses it")
            for slot in self.global_slots
        ] + [
            PreconditionViolation("SLOT_DEFAULT", slot, f"it is the default of slot {slot}")
            for slot in self.default_slots
        ]
        if overrides:
            found += [
                PreconditionViolation(
                    "SUCCESSOR", f"models/{model_id}", f"model id {model_id} names it as successor"
                )
                for model_id in self.successor_of
            ]
        if overrides and self.account_override_count:
            sample = ", ".join(self.account_ids)
            found.append(
                PreconditionViolation(
                    "ACCOUNT_OVERRIDE",
                    f"accounts/{self.account_ids[0]}" if self.account_ids else "accounts",
                    f"{self.account_override_count} account override(s) use it ({sample})",
                )
            )
        return found


def _a(word: str) -> str:
    """`a text`, `an image`: the article our model types take."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _describe(model: Model) -> str:
    return f"model {model.model_name!r} (id {model.id})"


def check_fits(slot: Slot, model: Model) -> None:
    """Refuse a model of the wrong provider or type for the slot, or an inactive one."""
    meta = {
        "slot": slot.name,
        "model_id": model.id,
        "model_name": model.model_name,
        "model_provider": model.provider,
        "required_provider": slot.required_provider,
        "model_type": model.model_type.value,
        "required_model_type": slot.required_model_type.value,
    }
    if model.provider != slot.required_provider:
        message = (
            f"{_describe(model)} is provider {model.provider!r}, but slot {slot.name!r} "
            f"requires provider {slot.required_provider!r}"
        )
        raise ProviderMismatch(
            message,
            violations=[PreconditionViolation("PROVIDER", f"models/{model.id}", message)],
            metadata=meta,
        )
    if model.model_type is not slot.required_model_type:
        message = (
            f"{_describe(model)} is {_a(model.model_type.value)} model, but slot {slot.name!r} "
            f"requires {_a(slot.required_model_type.value)} model"
        )
        raise ModelTypeMismatch(
            message,
            violations=[PreconditionViolation("MODEL_TYPE", f"models/{model.id}", message)],
            metadata=meta,
        )
    if not model.is_active:
        message = (
            f"{_describe(model)} is inactive, but slot {slot.name!r} accepts only active "
            "models; activate it before selecting it"
        )
        raise ModelInactive(
            message,
            violations=[PreconditionViolation("ACTIVE", f"models/{model.id}", message)],
            metadata=meta,
        )


def check_active(model: Model) -> None:
    """Refuse an inactive model where an active one is needed (e.g. as the successor to move
    settings to)."""
    if not model.is_active:
        message = f"{_describe(model)} is inactive; activate it first"
        raise ModelInactive(
            message,
            violations=[PreconditionViolation("ACTIVE", f"models/{model.id}", message)],
            metadata={"model_id": model.id, "model_name": model.model_name},
        )


def check_fits_every(slots: Iterable[Slot], model: Model, inactive_ok: bool = False) -> None:
    """check_fits for several slots at once: the first refusal, naming every slot it fails;
    `inactive_ok` checks provider and type only (for overrides, which may be kept skipped)."""
    refusals: list[FailedPrecondition] = []
    for slot in slots:
        try:
            check_fits(slot, model)
        except ModelInactive as refusal:
            if not inactive_ok:
                refusals.append(refusal)
        except FailedPrecondition as refusal:
            refusals.append(refusal)
    if refusals:
        first = refusals[0]
        if len(refusals) > 1:
            first.violations = tuple(v for r in refusals for v in r.violations)
            first.metadata["slots"] = ",".join(r.metadata["slot"] for r in refusals)
            first.message = f"{first.message} (and {len(refusals) - 1} more slots: see violations)"
            first.args = (first.message,)
        raise first


def check_successor(model: Model, successor: Model) -> None:
    """A successor replaces the model in its slots: the same provider and type, not itself."""
    if successor.id == model.id:
        raise SuccessorMismatch(
            f"{_describe(model)} cannot succeed itself",
            violations=[
                PreconditionViolation("SUCCESSOR", f"models/{model.id}", "the same model")
            ],
            metadata={"model_id": model.id, "successor_id": successor.id},
        )
    if (successor.provider, successor.model_type) != (model.provider, model.model_type):
        message = (
            f"{_describe(successor)} ({successor.provider}, {successor.model_type.value}) cannot "
            f"succeed {_describe(model)} ({model.provider}, {model.model_type.value}): a "
            "successor has the same provider and type"
        )
        raise SuccessorMismatch(
            message,
            violations=[PreconditionViolation("SUCCESSOR", f"models/{successor.id}", message)],
            metadata={"model_id": model.id, "successor_id": successor.id},
        )


def _in_use(model: Model, what: str, violations: list[PreconditionViolation]) -> ModelInUse:
    reasons = "; ".join(v.description for v in violations)
    return ModelInUse(
        f"cannot {what} {_describe(model)}: {reasons}",
        violations=violations,
        metadata={
            "model_id": model.id,
            "model_name": model.model_name,
            "operation": what.split()[0],
            "held_by": ",".join(f"{v.type}:{v.subject}" for v in violations),
        },
    )


def check_deletable(model: Model, usage: Usage) -> None:
    """A model that any setting, override or slot default refers to cannot be deleted."""
    holders = usage.holders()
    if holders:
        raise _in_use(model, "delete", holders)


def check_update_allowed(old: Model, new: Model, usage: Usage) -> None:
    """A model in use keeps name, provider and type; one a global or default uses stays active."""
    changed_identity = [
        name
        for name in ("model_name", "provider", "model_type")
        if getattr(old, name) != getattr(new, name)
    ]
    if changed_identity:
        holders = usage.holders()
        if holders:
            raise _in_use(old, f"change the {'/'.join(changed_identity)} of", holders)
    if old.is_active and not new.is_active:
        # Overrides of a deactivated model are kept and skipped; globals and defaults are not.
        holders = usage.holders(overrides=False)
        if holders:
            raise _in_use(old, "deactivate", holders)


def check_slot_update_allowed(old: Slot, new: Slot, holders: list[str]) -> None:
    """A slot that settings use keeps its provider and type: they are what the settings fit."""
    changed = [
        name
        for name in ("required_provider", "required_model_type")
        if getattr(old, name) != getattr(new, name)
    ]
    if changed and holders:
        message = (
            f"cannot change the {'/'.join(changed)} of slot {old.name!r}: "
            f"{'; '.join(holders)} use it"
        )
        raise SlotInUse(
            message,
            violations=[PreconditionViolation("SLOT_IN_USE", f"slots/{old.name}", message)],
            metadata={"slot": old.name, "fields": ",".join(changed)},
        )
