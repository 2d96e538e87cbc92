"""The conformance runners' subset matching: what a scenario's expectation accepts and refuses."""

from __future__ import annotations

import pytest

from tests.conformance.runner import check, mismatch, substitute


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ({"a": "1"}, {"a": "1", "b": 2}),
        ({"m": {"id": "2"}}, {"m": {"id": "2", "name": "x"}}),
        ([{"id": "1"}, "..."], [{"id": "1"}, {"id": "2"}]),
        ([], []),
    ],
)
def test_a_subset_matches(expected, actual):
    assert mismatch(expected, actual) is None


@pytest.mark.parametrize(
    ("expected", "actual", "said"),
    [
        ({"a": "1"}, {"a": "2"}, ".a: expected"),
        ({"a": "1"}, {}, ".a: missing"),
        ([{"id": "1"}], [{"id": "1"}, {"id": "2"}], "expected 1 items, got 2"),
        ([{"id": "1"}, "..."], [], "expected 1 items, got 0"),
        ({"a": {"b": True}}, {"a": {"b": False}}, ".a.b: expected true"),
    ],
)
def test_a_difference_is_named(expected, actual, said):
    assert said in mismatch(expected, actual)


def test_codes_reasons_and_saved_values():
    step = {"expect": {"code": "ABORTED", "reason": "ETAG_MISMATCH", "metadata": {"etag": "g1"}}}
    error = {"reason": "ETAG_MISMATCH", "metadata": {"etag": "g1", "current_etag": "g2"}}
    assert check(step, "ABORTED", error, []) is None
    assert "expected ABORTED, got OK" in check(step, "OK", {}, [{}])
    assert check(step, "ABORTED", {**error, "reason": "OTHER"}, []).startswith("expected reason")
    assert substitute({"t": "${token}", "n": ["${token}!"]}, {"token": "x"}) == {
        "t": "x", "n": ["x!"]}
