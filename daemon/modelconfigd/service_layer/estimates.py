"""EstimateCost: what a slot's volume costs under the model in use and under every model the
slot accepts, answered from the snapshot (no database)."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain import costs, validation
from ..domain.changes import Scope
from ..domain.costs import Estimate, Volume
from ..domain.errors import InvalidArgument
from ..domain.model import Model
from ..domain.state import State


@dataclass(frozen=True)
class CostAnswer:
    estimates: list[Estimate]
    revision: int
    # Weighted global estimates only: the accounts this daemon knows that follow the global
    # setting (or the default), and those whose own override a global switch leaves alone.
    accounts_following: int = 0
    accounts_overriding: int = 0


def estimate_cost(
    state: State,
    slot_name: str,
    account_id: str,
    scope: Scope | None,
    volume: Volume,
    weighted: bool,
) -> CostAnswer:
    scope = validation.write_scope(scope, account_id)
    catalog = state.catalog
    if slot_name not in catalog.slots:
        validation.slot_name(slot_name, list(catalog.slots))
    slot = catalog.slots[slot_name]
    volume.check()
    if weighted and scope is Scope.ACCOUNT:
        raise InvalidArgument.field(
            "weight_by_accounts",
            "weighs a global switch by the accounts it moves; an account's estimate is for one",
            reason="WEIGHT_NEEDS_GLOBAL_SCOPE",
        )
    if scope is Scope.ACCOUNT:
        current = state.view(account_id, (slot_name,)).slots[0].model
    else:
        # What follows the global layer:
        current = catalog.resolve_slot(slot, None, state.today).model
    candidates = [
        m
        for m in catalog.models.values()
        if m.is_active
        and m.provider == slot.required_provider
        and m.model_type is slot.required_model_type
    ]
    if not weighted:
        return CostAnswer(costs.estimates(current, candidates, volume), state.revision)
    following, overriding = _accounts_of(state, slot_name)
    return CostAnswer(
        costs.estimates(current, candidates, volume, following),
        state.revision,
        following,
        overriding,
    )


def _accounts_of(state: State, slot_name: str) -> tuple[int, int]:
    """Accounts that follow the global layer for the slot, and those with an active override
    of it (a global switch leaves them alone). Only accounts the daemon knows: those that have
    or had an override of some slot."""
    index = 1 + state.catalog.slot_index[slot_name]
    models: dict[int, Model] = state.catalog.models
    following = overriding = 0
    for _, record in state.accounts.items():
        override = record[index] if index < len(record) else None
        model = models.get(override) if override is not None else None
        if model is not None and model.is_active:
            overriding += 1
        else:
            following += 1
    return following, overriding
