"""Read models built from a State: a slot as one scope sees it, and the global settings."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.model import Model, Slot
from ..domain.state import State, global_etag


@dataclass(frozen=True)
class SlotView:
    """A slot with the model one scope selects (None: none) and its default."""

    slot: Slot
    model: Model | None
    default_model: Model


@dataclass(frozen=True)
class GlobalSettings:
    slots: list[SlotView]
    etag: str
    revision: int


def global_settings_of(state: State) -> GlobalSettings:
    """Every slot in slot order with its global setting, and the settings' etag."""
    catalog = state.catalog
    views = [
        SlotView(slot, catalog.global_model(slot.name), catalog.models[slot.default_model_id])
        for slot in catalog.slots.values()
    ]
    return GlobalSettings(views, global_etag(catalog.global_revision), state.revision)
