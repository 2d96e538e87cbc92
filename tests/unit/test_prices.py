"""Exact decimal prices: parsing, exact text and the admin label's display form."""

from decimal import Decimal

import pytest

from modelconfigd.domain.prices import PriceError, display_price, parse_price, price_text


@pytest.mark.parametrize("text", ["0", "0.15", "0.60", "10", "1.100", "0.000000000001"])
def test_prices_round_trip_exactly(text):
    assert price_text(parse_price(text)) == text


def test_surrounding_whitespace_is_trimmed():
    assert price_text(parse_price(" 0.15\n")) == "0.15"


def test_empty_means_not_applicable():
    assert parse_price("") is None
    assert parse_price(" ") is None
    assert price_text(None) == ""


@pytest.mark.parametrize(
    "text",
    [
        "-1",
        "-0.5",
        "1e3",
        "NaN",
        "Infinity",
        "0.1.2",
        "$1",
        "01",
        "1.",
        ".5",
        "0.0000000000001",
    ],
)
def test_malformed_or_negative_prices_are_refused(text):
    with pytest.raises(PriceError):
        parse_price(text)


def test_sums_are_exact_where_floats_are_not():
    assert parse_price("0.1") + parse_price("0.2") == Decimal("0.3")


@pytest.mark.parametrize(
    ("price", "shown"),
    [
        ("0.15", "$0.15"),
        ("0.6", "$0.60"),
        ("10", "$10.00"),
        ("0.125", "$0.125"),
        ("0", "$0.00"),
        ("3.000", "$3.00"),
    ],
)
def test_display_has_at_least_two_decimals(price, shown):
    assert display_price(Decimal(price)) == shown
