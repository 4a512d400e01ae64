"""Integer ranges as GBNF, checked against every integer of a window.

The rules are read by a matcher for the small GBNF subset they use (quoted
digit literals, digit classes, ``[0-9]{m}`` / ``{m,n}``, groups and ``|``),
which turns them into a Python regex; tests/integration/test_local_response_format.py
checks the same language through llama.cpp's own grammar sampler.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pytest

from gatehouse.providers.local.grammar_ranges import (
    MAX_DIGITS,
    integer_bounds,
    integer_range_rule,
)

WINDOW = range(-12_000, 12_001)
# Spellings JSON does not allow for an integer, each of which a rule must refuse.
MALFORMED = [
    "",
    "-",
    "--1",
    "1-",
    "+1",
    "-0",
    "00",
    "0-1",
    *(f"0{n}" for n in range(1000)),
    *(f"-0{n}" for n in range(1000)),
]
UNIVERSE = [str(n) for n in WINDOW] + MALFORMED
BOUNDS = [None, -11_000, -1234, -1000, -101, -100, -99, -10, -9, -1, 0, 1, 9, 10, 11, 12]
BOUNDS += [99, 100, 101, 199, 250, 600, 999, 1000, 1234, 5000, 9999, 10_000, 10_999]
PAIRS = [
    (low, high) for low in BOUNDS for high in BOUNDS if low is None or high is None or low <= high
]
_TOKEN = re.compile(r'\s*(?:"([0-9-]+)"|(\[[0-9]-?[0-9]?\])|(\{\d+(?:,\d+)?\})|([()|]))\s*')


def as_regex(rule: str) -> re.Pattern[str]:
    """The regex of a rule in the GBNF subset; anything else fails the test."""
    parts, position = [], 0
    while position < len(rule):
        token = _TOKEN.match(rule, position)
        assert token is not None, f"unexpected GBNF: {rule[position:]}"
        literal, digit_class, repeat, operator = token.groups()
        parts.append(re.escape(literal) if literal else digit_class or repeat or operator)
        position = token.end()
    return re.compile("".join(parts))


@cache
def expected(low: int | None, high: int | None) -> frozenset[str]:
    return frozenset(
        str(n) for n in WINDOW if (low is None or n >= low) and (high is None or n <= high)
    )


@pytest.mark.parametrize(("low", "high"), PAIRS)
def test_a_range_admits_exactly_its_integers_as_json_spells_them(
    low: int | None, high: int | None
) -> None:
    pattern = as_regex(integer_range_rule(low, high))
    admitted = {text for text in UNIVERSE if pattern.fullmatch(text)}
    assert admitted == expected(low, high)


def test_an_open_side_stops_at_the_converters_sixteen_digits() -> None:
    assert MAX_DIGITS == 16
    anything = as_regex(integer_range_rule(None, None))
    assert anything.fullmatch("9" * 16)
    assert anything.fullmatch("-" + "9" * 16)
    assert not anything.fullmatch("1" + "0" * 16)
    # A bound beyond the limit is the limit, and a range wholly beyond it is empty.
    assert integer_range_rule(0, 10**30) == integer_range_rule(0, None)
    with pytest.raises(ValueError, match="no integer"):
        integer_range_rule(10**20, None)


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(ValueError, match="minimum 5 and maximum 4"):
        integer_range_rule(5, 4)


def test_a_wide_range_stays_a_short_rule() -> None:
    rule = integer_range_rule(-(10**15) + 12_345, 10**15 - 54_321)
    assert len(rule) < 1500
    pattern = as_regex(rule)
    for n in (-(10**15) + 12_345, -7, 0, 10**15 - 54_321, 123_456_789_012):
        assert pattern.fullmatch(str(n))
    for n in (-(10**15) + 12_344, 10**15 - 54_320, 10**15):
        assert not pattern.fullmatch(str(n))


@pytest.mark.parametrize(
    ("schema", "bounds"),
    [
        ({}, (None, None)),
        ({"minimum": 1, "maximum": 600}, (1, 600)),
        ({"exclusiveMinimum": 0, "exclusiveMaximum": 10}, (1, 9)),
        ({"minimum": -2.5, "maximum": 2.5}, (-2, 2)),
        ({"exclusiveMinimum": -2.5, "exclusiveMaximum": 2.5}, (-2, 2)),
        ({"exclusiveMinimum": -3.0, "exclusiveMaximum": 3.0}, (-2, 2)),
        ({"minimum": 0, "exclusiveMinimum": 4, "maximum": 9, "exclusiveMaximum": 20}, (5, 9)),
        # draft 4: a boolean exclusiveMinimum / exclusiveMaximum makes the bound exclusive
        ({"minimum": 0, "exclusiveMinimum": True, "maximum": 9, "exclusiveMaximum": True}, (1, 8)),
        ({"minimum": 0, "exclusiveMinimum": False}, (0, None)),
        ({"maximum": -7}, (None, -7)),
    ],
)
def test_bounds_come_from_every_form_of_the_range_keywords(
    schema: dict[str, Any], bounds: tuple[int | None, int | None]
) -> None:
    assert integer_bounds(schema) == bounds


@pytest.mark.parametrize("bad", ["10", [1], float("inf"), float("nan")])
def test_a_bound_that_is_not_a_finite_number_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="maximum must be a finite number"):
        integer_bounds({"maximum": bad})
