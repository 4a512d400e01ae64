"""Judged RAG metrics: reading malformed replies, and the scores computed from verdicts."""

from __future__ import annotations

import pytest

from gatehouse.evals.parsing import JudgeParseError
from gatehouse.evals.rag_metrics import (
    Classification,
    average_precision,
    faithfulness_prompt,
    read_claims,
    read_classification,
    read_rating,
    read_verdicts,
    sentences,
    supported_share,
)


@pytest.mark.parametrize(
    ("text", "claims"),
    [
        ('{"claims": ["Paris is in France.", "It is the capital."]}', 2),
        ('Here you go:\n```json\n{"statements": ["A", "B", "C"]}\n```', 3),
        ('["only one"]', 1),
        ('{"claims": [{"claim": "A"}, {"text": "B"}]}', 2),
        ('{"claims": []}', 0),
        ("1. Paris is in France.\n2. It is the capital.", 2),
        ("- first claim\n- second claim\n* third", 3),
        ('{"result": ["A", "B"]}', 2),  # one list under an unexpected key
        # what SmolLM2 wrote in the end-to-end test
        ('{"claim 1": "The clock is old.", "claim 2": "It is in the hall."}', 2),
        ('{"claims": [{"claim1": "Water comes from a barrel.", "description": "x"}]}', 1),
    ],
)
def test_claims_are_read_from_many_shapes(text: str, claims: int) -> None:
    assert len(read_claims(text)) == claims


@pytest.mark.parametrize("text", ["I think it is fine.", '{"claims": "Paris"}', '{"claims": [3]}'])
def test_unreadable_claims_raise(text: str) -> None:
    with pytest.raises(JudgeParseError):
        read_claims(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"verdicts": [{"index": 1, "verdict": "yes"}, {"index": 2, "verdict": "no"}, '
        '{"index": 3, "verdict": "Supported"}]}',
        # indexes out of order
        '{"verdicts": [{"index": 3, "verdict": "yes"}, {"index": 1, "verdict": "yes"}, '
        '{"index": 2, "verdict": "no"}]}',
        '["yes", "no", "yes"]',
        "[true, false, true,]",
        '{"1": "yes", "2": "no", "3": "yes"}',
        "Verdicts:\n1. Yes\n2. No, not stated\n3. yes",
        "```json\n{'verdicts': ['yes', 'no', 'yes']}\n```",
        '{"results": [{"supported": true}, {"supported": false}, {"supported": true}]}',
    ],
)
def test_verdicts_are_read_in_order(text: str) -> None:
    assert read_verdicts(text, 3) == [True, False, True]


@pytest.mark.parametrize(
    "text",
    [
        '["yes", "no"]',  # too few
        '["yes", "no", "yes", "no"]',  # too many
        '["yes", "maybe", "no"]',  # unreadable verdict
        "1. yes\n2. no",  # lines, too few
        "All good!",
        '{"verdicts": [{"index": 1, "verdict": "yes"}, {"index": 1, "verdict": "no"}, "x"]}',
    ],
)
def test_wrong_verdict_counts_raise(text: str) -> None:
    with pytest.raises(JudgeParseError):
        read_verdicts(text, 3)


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ('{"score": 5}', 1.0),
        ('{"score": 1}', 0.0),
        ('{"score": "three"}', 0.5),
        ("Score: 4", 0.75),
        ("I rate it 4/5", 0.8),
        ("[2]", 0.25),
        ('{"rating": 3,}', 0.5),
    ],
)
def test_ratings_map_to_zero_to_one(text: str, score: float) -> None:
    assert read_rating(text) == pytest.approx(score)


@pytest.mark.parametrize("text", ['{"score": 9}', '{"score": 0}', "no idea", '{"score": true}'])
def test_out_of_range_or_missing_ratings_raise(text: str) -> None:
    with pytest.raises(JudgeParseError):
        read_rating(text)


def test_classification_accepts_lists_or_counts_and_key_synonyms() -> None:
    lists = read_classification('{"TP": ["a", "b"], "FP": ["c"], "FN": []}')
    assert lists == Classification(tp=2, fp=1, fn=0)
    assert lists.score == pytest.approx(2 / 2.5)
    counts = read_classification('{"true_positives": 1, "false_positives": "two", "fn": 1}')
    assert counts == Classification(tp=1, fp=2, fn=1)
    assert Classification(0, 0, 0).score is None
    assert Classification(0, 2, 1).score == 0.0


@pytest.mark.parametrize(
    "text", ['{"tp": ["a"], "fp": []}', '["a"]', '{"tp": -1, "fp": 0, "fn": 0}', "none"]
)
def test_incomplete_classifications_raise(text: str) -> None:
    with pytest.raises(JudgeParseError):
        read_classification(text)


def test_scores_from_verdicts() -> None:
    assert supported_share([True, False, True, True]) == 0.75
    assert supported_share([]) is None
    # Useful at ranks 1 and 3: (1/1 + 2/3) / 2.
    assert average_precision([True, False, True]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([False, False]) == 0.0
    assert average_precision([]) is None


def test_sentences_split_on_end_punctuation() -> None:
    assert sentences("Paris is the capital. It has 2 million people! Is it big? Yes.") == [
        "Paris is the capital.",
        "It has 2 million people!",
        "Is it big?",
        "Yes.",
    ]
    assert sentences("e.g. this stays whole") == ["e.g. this stays whole"]


def test_prompts_number_their_items() -> None:
    prompt = faithfulness_prompt(["ctx one", "ctx two"], ["claim a", "claim b"])
    assert "1. ctx one" in prompt
    assert "2. claim b" in prompt
    assert "exactly 2 verdicts" in prompt
