"""Page tokens are opaque, bound to their filters, and refuse tampering."""

import pytest

from modelconfigd.domain.errors import InvalidArgument
from modelconfigd.service_layer import pagination


def test_token_round_trips_for_the_same_filters():
    token = pagination.encode(42, ("openai", None, True))
    assert pagination.decode(token, ("openai", None, True)) == 42


@pytest.mark.parametrize(
    "token", ["x", "eyJhZnRlciI6IC0xfQ", "e30", "!!!", "A" * 21 + "!", "A" * 23]
)
def test_tampered_tokens_are_refused(token):
    with pytest.raises(InvalidArgument):
        pagination.decode(token, ())


@pytest.mark.parametrize(("asked", "given"), [(0, 100), (5, 5), (10_000, 1000)])
def test_page_size_defaults_and_caps(asked, given):
    assert pagination.page_size(asked) == given
