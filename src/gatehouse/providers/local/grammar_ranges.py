"""Integer ranges as GBNF: the JSON integers between two bounds, and no others.

llama-cpp-python's schema converter writes every ``integer`` as ``"-"? digits``
whatever its ``minimum`` / ``maximum``, so a model under the grammar can
write 1000 where the schema says at most 600. A grammar cannot compare
numbers, but it can spell a range out digit by digit: 1..600 is ``[1-9]``
(one digit), ``[1-9] [0-9]`` (two) and ``[1-5] [0-9]{2} | "600"`` (three).
llama.cpp's own C++ converter does the same (``_generate_min_max_int``);
this is a separate implementation of the idea, split by digit count.

Pure text: no llama.cpp needed, so the rules are checked exhaustively in
unit tests. Number (float) ranges have no exact digit-by-digit spelling and
are left to validation.
"""

from __future__ import annotations

import math
import re
from typing import Any

# The converter's own integers have at most 16 digits; an unbounded side
# stops there too, so bounding an integer never widens what it admits.
MAX_DIGITS = 16
BOUND_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def integer_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    """The inclusive integer bounds a schema's range keywords set.

    Takes the draft 6+ numeric ``exclusiveMinimum`` / ``exclusiveMaximum`` and
    draft 4's boolean form (which makes ``minimum`` / ``maximum`` exclusive);
    fractional bounds round inwards. Raises ``ValueError`` for a bound that
    is not a finite number.
    """
    lower: int | None = None
    upper: int | None = None
    draft4_low = schema.get("exclusiveMinimum") is True
    draft4_high = schema.get("exclusiveMaximum") is True
    for keyword in BOUND_KEYWORDS:
        value = schema.get(keyword)
        if value is None or isinstance(value, bool):
            continue
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{keyword} must be a finite number, not {value!r}")
        if keyword == "minimum" and not draft4_low:
            bound, is_lower = math.ceil(value), True
        elif keyword in ("minimum", "exclusiveMinimum"):
            bound, is_lower = math.floor(value) + 1, True
        elif keyword == "maximum" and not draft4_high:
            bound, is_lower = math.floor(value), False
        else:
            bound, is_lower = math.ceil(value) - 1, False
        if is_lower:
            lower = bound if lower is None else max(lower, bound)
        else:
            upper = bound if upper is None else min(upper, bound)
    return lower, upper


def integer_range_rule(minimum: int | None, maximum: int | None) -> str:
    """A GBNF expression for the integers in ``[minimum, maximum]`` as JSON writes
    them: no leading zeros, ``-`` only before a non-zero magnitude.

    ``None`` leaves a side open (down or up to :data:`MAX_DIGITS` digits).
    Raises ``ValueError`` when no integer of at most that many digits is in range.
    """
    limit = 10**MAX_DIGITS - 1
    low = -limit if minimum is None else max(minimum, -limit)
    high = limit if maximum is None else min(maximum, limit)
    if low > high:
        raise ValueError(
            f"no integer of at most {MAX_DIGITS} digits lies between "
            f"minimum {minimum} and maximum {maximum}"
        )
    alternatives = []
    if low < 0:
        alternatives.append('"-" ' + _group(_magnitudes(max(1, -high), -low)))
    if high >= 0:
        alternatives.extend(_magnitudes(max(0, low), high))
    return " | ".join(alternatives)


def _magnitudes(low: int, high: int) -> list[str]:
    """Alternatives spelling ``low..high`` (``0 <= low <= high``), one digit count at a time."""
    alternatives: list[str] = []
    whole: list[int] = []  # digit counts taken whole, one run: [1-9] [0-9]{a,b}
    for digits in range(len(str(low)), len(str(high)) + 1):
        first = 0 if digits == 1 else 10 ** (digits - 1)
        last = 10**digits - 1
        start, stop = max(low, first), min(high, last)
        if digits > 1 and (start, stop) == (first, last):
            whole.append(digits - 1)
            continue
        if whole:  # only the first and last digit counts can be partial
            alternatives.append("[1-9] " + _any_digits(whole[0], whole[-1]))
            whole = []
        alternatives.extend(_same_length(str(start), str(stop)))
    if whole:
        alternatives.append("[1-9] " + _any_digits(whole[0], whole[-1]))
    return alternatives


def _same_length(start: str, stop: str) -> list[str]:
    """Alternatives spelling the numbers from ``start`` to ``stop``, strings of one length."""
    if start == stop:
        return [f'"{start}"']
    shared = 0
    while start[shared] == stop[shared]:
        shared += 1
    prefix = f'"{start[:shared]}" ' if shared else ""
    low, high = start[shared], stop[shared]
    low_tail, high_tail = start[shared + 1 :], stop[shared + 1 :]
    rest = len(low_tail)
    if rest == 0:
        return [prefix + _digit_class(low, high)]
    zeros, nines = "0" * rest, "9" * rest
    alternatives = []
    # low digit with a tail from low_tail up; whole middle digits; high digit
    # with a tail up to high_tail. A tail that spans everything joins the middle.
    middle_low, middle_high = low, high
    if low_tail != zeros:
        alternatives.append(_then(low, _same_length(low_tail, nines)))
        middle_low = chr(ord(low) + 1)
    if high_tail != nines:
        middle_high = chr(ord(high) - 1)
    if middle_low <= middle_high:
        alternatives.append(_digit_class(middle_low, middle_high) + " " + _any_digits(rest, rest))
    if high_tail != nines:
        alternatives.append(_then(high, _same_length(zeros, high_tail)))
    if prefix:
        return [prefix + _group(alternatives)]
    return alternatives


def _then(digit: str, alternatives: list[str]) -> str:
    """``digit`` followed by one of ``alternatives``; one literal absorbs it (``"600"``)."""
    if len(alternatives) == 1 and re.fullmatch(r'"[0-9]+"', alternatives[0]):
        return f'"{digit}{alternatives[0][1:]}'
    return f'"{digit}" ' + _group(alternatives)


def _digit_class(low: str, high: str) -> str:
    return f"[{low}]" if low == high else f"[{low}-{high}]"


def _any_digits(fewest: int, most: int) -> str:
    if fewest == most:
        return "[0-9]" if fewest == 1 else f"[0-9]{{{fewest}}}"
    return f"[0-9]{{{fewest},{most}}}"


def _group(alternatives: list[str]) -> str:
    return alternatives[0] if len(alternatives) == 1 else "(" + " | ".join(alternatives) + ")"
