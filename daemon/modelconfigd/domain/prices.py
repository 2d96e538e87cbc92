"""Exact decimal prices in USD: parsing from strings, canonical text, and display formatting."""

from __future__ import annotations

import re
from decimal import Decimal

# Plain decimal notation only: no exponent, sign, NaN or infinity, so what is stored is what was
# typed. Twelve decimal places are finer than any provider prices today.
_PRICE = re.compile(r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,12})?$")


class PriceError(ValueError):
    """A price string that is not a non-negative plain decimal."""


def parse_price(text: str) -> Decimal | None:
    """Parse a price string; the empty string means "does not apply" and gives None."""
    text = text.strip()
    if text == "":
        return None
    if text.startswith("-"):
        raise PriceError(f"price {text!r} is negative")
    if not _PRICE.fullmatch(text):
        raise PriceError(f"price {text!r} is not a plain decimal number such as 0.15")
    return Decimal(text)


def price_text(price: Decimal | None) -> str:
    """The exact text of a price as it was entered (`0.60` stays `0.60`); empty for None."""
    return "" if price is None else format(price, "f")


def display_price(price: Decimal) -> str:
    """A price as the admin label shows it: `$` and at least two decimals (`$0.60`, `$0.125`)."""
    exponent = price.normalize().as_tuple().exponent
    places = max(2, -exponent if isinstance(exponent, int) else 0)
    return f"${price:.{places}f}"
