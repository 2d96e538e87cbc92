"""The constraints writes must respect: what a slot accepts and what a model in use may not lose."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import (
    ModelInactive,
    ModelInUse,
    ModelTypeMismatch,
    PreconditionViolation,
    ProviderMismatch,
    SlotInUse,
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

    def holders(self, *, overrides: bool = True) -> list[PreconditionViolation]:
        """One violation per kind of holder, for a FAILED_PRECONDITION that names them."""
        found = [
            PreconditionViolation("GLOBAL_SETTING", slot, f"the global setting of {slot} uses it")
            for slot in self.global_slots
        ] + [
            PreconditionViolation("SLOT_DEFAULT", slot, f"it is the default of slot {slot}")
            for slot in self.default_slots
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
            f"{_describe(model)} is a {model.model_type.value} model, but slot {slot.name!r} "
            f"requires a {slot.required_model_type.value} model"
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
