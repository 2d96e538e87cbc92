"""The catalog's value objects: models, slots, model types and resolution sources."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from .prices import display_price


class ModelType(enum.Enum):
    TEXT = "text"
    IMAGE = "image"


class Source(enum.Enum):
    ACCOUNT = "account"
    GLOBAL = "global"
    DEFAULT = "default"


class Deprecation(enum.Enum):
    """Which models a listing keeps, by their deprecation dates."""

    SCHEDULED = "scheduled"  # with a date, reached or not
    PAST = "past"  # the date is reached
    CURRENT = "current"  # no date, or a date ahead

    def keeps(self, model: Model, today: date) -> bool:
        if self is Deprecation.SCHEDULED:
            return model.deprecation_date is not None
        return model.deprecated_on(today) is (self is Deprecation.PAST)


@dataclass(frozen=True, slots=True)
class ImagePrice:
    """The price of one image of a size and quality, and where and when it was checked."""

    size: str
    quality: str
    price: Decimal
    checked_on: date | None = None
    source_url: str = ""


@dataclass(frozen=True, slots=True)
class PriceSource:
    """Where and when one of a model's price fields was checked."""

    price: str
    checked_on: date
    source_url: str


@dataclass(frozen=True, slots=True)
class Model:
    id: int
    model_name: str
    display_name: str
    provider: str
    model_type: ModelType
    is_active: bool
    input_price_per_1m_tokens: Decimal | None = None
    output_price_per_1m_tokens: Decimal | None = None
    price_per_image: Decimal | None = None
    context_window: int = 0
    max_output_tokens: int = 0
    aliases: tuple[str, ...] = ()
    # Last, so that models built field by field in order keep their meaning.
    cached_input_price_per_1m_tokens: Decimal | None = None
    image_prices: tuple[ImagePrice, ...] = ()
    price_sources: tuple[PriceSource, ...] = ()
    deprecation_date: date | None = None
    successor_id: int | None = None

    def deprecated_on(self, day: date) -> bool:
        """Whether the model counts as deprecated on `day` (its deprecation date is reached)."""
        return self.deprecation_date is not None and self.deprecation_date <= day

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the model answers to: its name first, then its aliases."""
        return (self.model_name, *self.aliases)

    @property
    def label(self) -> str:
        """The seed's admin label: `GPT-4o Mini (gpt-4o-mini) - $0.15/$0.60 per 1M tokens`."""
        head = f"{self.display_name} ({self.model_name})"
        if self.model_type is ModelType.IMAGE:
            if self.price_per_image is None:
                return head
            return f"{head} - {display_price(self.price_per_image)} per image"
        prices = (self.input_price_per_1m_tokens, self.output_price_per_1m_tokens)
        if prices == (None, None):
            return head
        shown = "/".join("n/a" if p is None else display_price(p) for p in prices)
        return f"{head} - {shown} per 1M tokens"


@dataclass(frozen=True, slots=True)
class Slot:
    """A named place a model is chosen for: what it accepts and what it falls back to."""

    name: str
    required_provider: str
    required_model_type: ModelType
    default_model_id: int
    display_name: str = ""

    def accepts(self, model: Model) -> bool:
        return (
            model.provider == self.required_provider
            and model.model_type is self.required_model_type
        )
