"""Reading what a judge model wrote: JSON, verdicts and numbers, from untidy text. Pure.

Judge models rarely answer with bare, valid JSON. What they write instead,
and what is read anyway:

- JSON in prose ("Sure! Here is the result: {...} Hope this helps"), or in a
  code fence (```json ... ```);
- trailing commas, single quotes, Python's ``True``/``False``/``None``,
  ``//`` comments, curly quotes;
- verdicts as synonyms ("Supported", "yes.", "entailed", "NOT supported",
  "partially", 1, true);
- numbers as words ("four"), fractions ("3/4"), "4 out of 5", percentages.

What cannot be read raises :class:`JudgeParseError` with a short reason; the
caller retries the judge, and reports the item as failed when retries run out
(never a NaN, never a made-up 0).
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

MAX_CHARS = 20_000  # longer outputs are cut before parsing: literal_eval is not linear


class JudgeParseError(ValueError):
    """The judge's output could not be read; the message says why, in a few words."""


_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_LINE_COMMENT = re.compile(r"(?m)^\s*//.*$|(?<=[,{\[])\s*//[^\n]*")
_CURLY = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


def extract_json(text: str) -> Any:
    """The first JSON value (object or array) found in ``text``, repaired if need be."""
    text = text[:MAX_CHARS].translate(_CURLY)
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    candidates.append(text)
    for candidate in candidates:
        stripped = candidate.strip()
        value = _loads(stripped)
        if value is not _FAIL:
            return value
        for block in _balanced_blocks(stripped):
            value = _loads(block)
            if value is not _FAIL:
                return value
    raise JudgeParseError("no JSON object or array found")


_FAIL = object()


def _loads(text: str) -> Any:
    if not text or text[0] not in "{[":
        return _FAIL
    try:
        return json.loads(text)
    except ValueError:
        pass
    repaired = _TRAILING_COMMA.sub(r"\1", _LINE_COMMENT.sub("", text))
    try:
        return json.loads(repaired)
    except ValueError:
        pass
    try:
        return ast.literal_eval(_pythonic(repaired))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return _FAIL


def _pythonic(text: str) -> str:
    """JSON's literals as Python's, outside strings, for ``ast.literal_eval``."""
    out: list[str] = []
    for piece in re.split(r"(\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*')", text):
        if piece[:1] in ("'", '"'):
            out.append(piece)
        else:
            out.append(
                re.sub(
                    r"\b(true|false|null)\b",
                    lambda m: {"true": "True", "false": "False", "null": "None"}[m[1]],
                    piece,
                )
            )
    return "".join(out)


def _balanced_blocks(text: str) -> list[str]:
    """Every top-level ``{...}`` or ``[...]`` span of ``text``, brackets matched outside strings."""
    blocks: list[str] = []
    start = -1
    stack: list[str] = []
    quote = ""
    escaped = False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
            continue
        if ch == '"' and stack:
            quote = ch
        elif ch in "{[":
            if not stack:
                start = i
            stack.append("}" if ch == "{" else "]")
        elif stack and ch == stack[-1]:
            stack.pop()
            if not stack:
                blocks.append(text[start : i + 1])
        elif stack and ch in "}]":
            stack = []  # mismatched: give up on this block, look for the next
    return blocks


# -- verdicts --

_NEGATIVE = (
    "not supported",
    "unsupported",
    "not entailed",
    "not relevant",
    "not useful",
    "not attributable",
    "not attributed",
    "not present",
    "not faithful",
    "not correct",
    "not true",
    "irrelevant",
    "contradict",
    "contradicts",
    "contradicted",
    "contradiction",
    "incorrect",
    "false",
    "no",
    "n",
    "0",
    "fail",
    "failed",
    "absent",
    "unfaithful",
    "wrong",
    "none",
)
_POSITIVE = (
    "supported",
    "support",
    "supports",
    "entailed",
    "entailment",
    "entails",
    "relevant",
    "useful",
    "attributable",
    "attributed",
    "present",
    "faithful",
    "correct",
    "true",
    "yes",
    "y",
    "1",
    "pass",
    "passed",
    "partially supported",
    "partially",
    "partial",
)


def parse_verdict(value: Any) -> bool:
    """A yes/no verdict from a bool, a number (1/0) or a word or phrase.

    Partial support counts as not supported (a claim is supported or it is
    not); a sentence is read from its start, so "No, the context says ..." is
    a no and "Yes. Because ..." a yes.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if value in (0, 1):
            return bool(value)
        raise JudgeParseError(f"verdict {value!r} is neither 0 nor 1")
    if isinstance(value, dict):
        for key in ("verdict", "supported", "label", "answer", "result", "relevant", "attributed"):
            if key in value:
                return parse_verdict(value[key])
        raise JudgeParseError("verdict object has no 'verdict' field")
    if not isinstance(value, str):
        raise JudgeParseError(f"verdict of type {type(value).__name__}")
    words = re.sub(r"[^a-z0-9 ]+", " ", value.lower()).split()
    phrase = " ".join(words)
    if not words:
        raise JudgeParseError("empty verdict")
    if phrase.startswith(("partially", "partial")):
        return False
    for candidates, verdict in ((_NEGATIVE, False), (_POSITIVE, True)):
        for candidate in candidates:
            if phrase == candidate or phrase.startswith(candidate + " "):
                return verdict
    # A sentence about the verdict ("The claim is not supported by the context"):
    # one of the longer words, negations first.
    padded = f" {phrase} "
    for candidates, verdict in ((_NEGATIVE, False), (_POSITIVE, True)):
        for candidate in candidates:
            if len(candidate) > 3 and f" {candidate} " in padded:
                return verdict
    raise JudgeParseError(f"verdict {value[:40]!r} is not a yes or a no")


# -- numbers --

_UNITS = {
    word: n
    for n, word in enumerate(
        (
            *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
            *("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen"),
            *("seventeen", "eighteen", "nineteen"),
        )
    )
}
_TENS = {
    word: 10 * n
    for n, word in enumerate(
        ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"), 2
    )
}
_NUMBER = r"[-+]?\d+(?:\.\d+)?"


def words_to_number(text: str) -> float | None:
    """``"four"`` -> 4, ``"twenty-one"`` -> 21, ``"one hundred"`` -> 100, ``"half"`` -> 0.5."""
    words = re.sub(r"[^a-z ]+", " ", text.lower().replace("-", " ")).split()
    words = [w for w in words if w != "and"]
    if words in (["half"], ["a", "half"], ["one", "half"]):
        return 0.5
    total = 0
    current = 0
    if not words:
        return None
    for word in words:
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word == "thousand":
            total += max(current, 1) * 1000
            current = 0
        else:
            return None
    return float(total + current)


def parse_number(value: Any) -> float:
    """A number from a number, or from text: ``"4"``, ``"4/5"``, ``"4 out of 5"``,
    ``"80%"``, ``"four"``, ``"Score: 4"``. A fraction or a percentage gives a
    share (``0.8``), as the judge meant it; a plain number is returned as is."""
    if isinstance(value, bool):
        raise JudgeParseError("a boolean is not a score")
    if isinstance(value, int | float):
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise JudgeParseError("score is not a finite number")
        return number
    if isinstance(value, dict):
        for key in ("score", "rating", "value", "relevance", "relevancy"):
            if key in value:
                return parse_number(value[key])
        raise JudgeParseError("score object has no 'score' field")
    if not isinstance(value, str):
        raise JudgeParseError(f"score of type {type(value).__name__}")
    text = value.strip().lower()
    fraction = re.search(rf"({_NUMBER})\s*(?:/|out of|of)\s*({_NUMBER})", text)
    if fraction and float(fraction[2]) > 0:
        return float(fraction[1]) / float(fraction[2])
    percent = re.search(rf"({_NUMBER})\s*%", text)
    if percent:
        return float(percent[1]) / 100
    plain = re.search(_NUMBER, text)
    if plain:
        return float(plain[0])
    spelled = re.search(r"([a-z]+(?:[ -][a-z]+)*)\s+out of\s+([a-z]+)", text)
    if spelled:
        top, bottom = words_to_number(spelled[1].split()[-1]), words_to_number(spelled[2])
        if top is not None and bottom:
            return top / bottom
    for word in re.findall(r"[a-z]+(?:-[a-z]+)?", text):
        spelled_number = words_to_number(word)
        if spelled_number is not None:
            return spelled_number
    raise JudgeParseError(f"no number in {value[:40]!r}")
