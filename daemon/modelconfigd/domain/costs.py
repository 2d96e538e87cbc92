"""What a volume of use costs under a model, in exact decimals, and what a switch would cost.

Prices are per 1M tokens (input, cached input, output) or per image. A model without a price
that the volume needs has no cost: the missing price is named, never taken as free.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from .errors import InvalidArgument
from .model import Model
from .validation import IMAGE_QUALITY, IMAGE_SIZE

_MILLION = Decimal(1_000_000)
# A volume's parts, each with the model field that prices it and the unit it is priced in.
_PRICED = (
    ("input_tokens", "input_price_per_1m_tokens", _MILLION),
    ("cached_input_tokens", "cached_input_price_per_1m_tokens", _MILLION),
    ("output_tokens", "output_price_per_1m_tokens", _MILLION),
    ("images", "price_per_image", Decimal(1)),
)
_MAX_COUNT = 10**15  # a quadrillion tokens a period is beyond any platform


@dataclass(frozen=True)
class Volume:
    """Expected use per period."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    # Both or neither: images priced at this size and quality from the models' image_prices.
    image_size: str = ""
    image_quality: str = ""

    def check(self) -> Volume:
        tier_ok = bool(
            IMAGE_SIZE.fullmatch(self.image_size) and IMAGE_QUALITY.fullmatch(self.image_quality)
        )
        if (self.image_size or self.image_quality) and not tier_ok:
            raise InvalidArgument.field(
                "image_size",
                "give both image_size (WIDTHxHEIGHT) and image_quality (e.g. hd), or neither",
                reason="INVALID_IMAGE_TIER",
                image_size=self.image_size,
                image_quality=self.image_quality,
            )
        for name, _, _ in _PRICED:
            count = getattr(self, name)
            if count < 0 or count > _MAX_COUNT:
                raise InvalidArgument.field(
                    name,
                    f"{count} is not a count between 0 and {_MAX_COUNT:,}",
                    reason="INVALID_VOLUME",
                    **{name: count},
                )
        if not any(getattr(self, name) for name, _, _ in _PRICED):
            raise InvalidArgument.field(
                "input_tokens",
                "no volume: give input_tokens, cached_input_tokens, output_tokens or images",
                reason="NO_VOLUME",
            )
        return self


@dataclass(frozen=True)
class Cost:
    """A volume's cost under one model; `amount` is None when `missing` names prices."""

    model: Model
    amount: Decimal | None
    missing: tuple[str, ...]


def cost_of(model: Model, volume: Volume) -> Cost:
    amount = Decimal(0)
    missing = []
    for name, price_field, unit in _PRICED:
        count = getattr(volume, name)
        if not count:
            continue
        price = getattr(model, price_field, None)
        if name == "images" and volume.image_size:
            tier = (volume.image_size, volume.image_quality)
            price = next((p.price for p in model.image_prices if (p.size, p.quality) == tier), None)
            price_field = f"image_prices[{tier[0]}:{tier[1]}]"
        if price is None:
            missing.append(price_field)
        else:
            amount += price * count / unit
    return Cost(model, None if missing else amount, tuple(missing))


@dataclass(frozen=True)
class Estimate:
    """One candidate: its cost (weighted by accounts when asked), the difference from the
    current model's, and whether it is the current model."""

    cost: Cost
    total: Decimal | None
    difference: Decimal | None
    current: bool


def estimates(
    current: Model, candidates: Iterable[Model], volume: Volume, followers: int = 1
) -> list[Estimate]:
    """Every candidate (and the current model) priced for `followers` users of the volume,
    cheapest first, those without a cost last (in id order)."""
    models = {m.id: m for m in candidates}
    models.setdefault(current.id, current)
    costs = [cost_of(m, volume) for m in models.values()]
    now = next(c for c in costs if c.model.id == current.id)
    now_total = None if now.amount is None else now.amount * followers

    def estimate(cost: Cost) -> Estimate:
        total = None if cost.amount is None else cost.amount * followers
        difference = None if total is None or now_total is None else total - now_total
        return Estimate(cost, total, difference, cost.model.id == current.id)

    ranked = [estimate(c) for c in costs]
    ranked.sort(key=lambda e: (e.total is None, e.total or 0, e.cost.model.id))
    return ranked


def amount_text(amount: Decimal | None) -> str:
    """An exact amount without exponent or trailing zeros (`1.5`, `120`); empty for none."""
    if amount is None:
        return ""
    text = format(amount.normalize(), "f")
    return "0" if text in ("-0", "0") else text
