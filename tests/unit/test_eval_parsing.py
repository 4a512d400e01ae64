"""Reading judge output: JSON in prose and fences, repairs, verdict synonyms, numbers as words."""

from __future__ import annotations

import pytest

from gatehouse.evals.parsing import (
    JudgeParseError,
    extract_json,
    parse_number,
    parse_verdict,
    words_to_number,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"score": 4}', {"score": 4}),
        ('Sure! Here is my rating: {"score": 4}. Hope this helps.', {"score": 4}),
        ('```json\n{"claims": ["a", "b"]}\n```', {"claims": ["a", "b"]}),
        ("```\n[1, 2]\n```\nand some words after", [1, 2]),
        ('{"claims": ["a", "b",],}', {"claims": ["a", "b"]}),
        (
            "{'verdict': 'yes', 'ok': True, 'none': None}",
            {"verdict": "yes", "ok": True, "none": None},
        ),
        ('{"a": true, "b": null, "c": "true"}', {"a": True, "b": None, "c": "true"}),
        ("{\u201cscore\u201d: 3}", {"score": 3}),
        ('{\n  // the rating\n  "score": 2\n}', {"score": 2}),
        ('Text with a brace } first, then {"x": "a } in a string"}', {"x": "a } in a string"}),
        ('broken {"x": [} then {"y": 1}', {"y": 1}),
        ('{"outer": {"inner": [1, {"deep": 2}]}}', {"outer": {"inner": [1, {"deep": 2}]}}),
    ],
)
def test_extract_json_reads_what_judges_write(text: str, expected: object) -> None:
    assert extract_json(text) == expected


@pytest.mark.parametrize("text", ["", "no json here", "{not: json at all", "[unclosed", "{'a': }"])
def test_extract_json_fails_with_a_reason(text: str) -> None:
    with pytest.raises(JudgeParseError, match="no JSON"):
        extract_json(text)


def test_extract_json_prefers_a_fenced_block_over_earlier_prose_braces() -> None:
    text = 'I considered {"score": 1} but\n```json\n{"score": 5}\n```'
    assert extract_json(text) == {"score": 5}


@pytest.mark.parametrize(
    "value",
    [
        "yes",
        "Yes.",
        "YES - the context says so",
        "Supported",
        "entailed",
        "true",
        True,
        1,
        "1",
        "y",
        "The claim is supported by the context.",
        {"verdict": "yes"},
        {"supported": True},
    ],
)
def test_positive_verdicts(value: object) -> None:
    assert parse_verdict(value) is True


@pytest.mark.parametrize(
    "value",
    [
        "no",
        "No, the context does not say that",
        "NOT supported",
        "unsupported",
        "Not entailed.",
        "contradicted",
        "false",
        False,
        0,
        "partially supported",
        "Partial",
        "The claim is not supported by the context.",
        "irrelevant",
        {"label": "no"},
    ],
)
def test_negative_verdicts(value: object) -> None:
    assert parse_verdict(value) is False


@pytest.mark.parametrize("value", ["", "maybe", "I cannot tell", 0.5, 2, None, [True], {"x": 1}])
def test_unreadable_verdicts_raise(value: object) -> None:
    with pytest.raises(JudgeParseError):
        parse_verdict(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4, 4.0),
        (0.25, 0.25),
        ("4", 4.0),
        ("Score: 4", 4.0),
        ("4/5", 0.8),
        ("4 out of 5", 0.8),
        ("80%", 0.8),
        ("four", 4.0),
        ("I'd say three.", 3.0),
        ("twenty-one", 21.0),
        ("four out of five", 0.8),
        ({"score": "five"}, 5.0),
        ({"rating": 2}, 2.0),
    ],
)
def test_numbers(value: object, expected: float) -> None:
    assert parse_number(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", [True, "no number", float("nan"), float("inf"), None, {"x": 1}])
def test_unreadable_numbers_raise(value: object) -> None:
    with pytest.raises(JudgeParseError):
        parse_number(value)


def test_words_to_number() -> None:
    assert words_to_number("one hundred and five") == 105
    assert words_to_number("half") == 0.5
    assert words_to_number("zero") == 0
    assert words_to_number("lots") is None
    assert words_to_number("") is None
