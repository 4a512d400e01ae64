"""Deterministic answer metrics: SQuAD exact match and token F1, citation validity."""

from __future__ import annotations

import pytest

from gatehouse.evals.answers import (
    CitedChunk,
    check_citations,
    exact_match,
    normalize_answer,
    strip_citations,
    token_f1,
)


def test_normalisation_is_squads() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert normalize_answer("  Théâtre  ") == "théâtre"


def test_exact_match_after_normalisation_best_of_the_references() -> None:
    assert exact_match("the Eiffel tower.", ["Eiffel Tower"]) == 1.0
    assert exact_match("Eiffel", ["Eiffel Tower"]) == 0.0
    assert exact_match("1889", ["in 1889", "1889"]) == 1.0
    assert exact_match("anything", []) == 0.0


def test_token_f1_matches_hand_computed_values() -> None:
    # prediction: eiffel tower in paris; reference: eiffel tower: p = 2/4, r = 1.
    assert token_f1("The Eiffel Tower in Paris", ["Eiffel Tower"]) == pytest.approx(2 / 3)
    assert token_f1("Eiffel Tower, Paris", ["the Eiffel Tower"]) == pytest.approx(0.8)
    assert token_f1("Paris", ["Eiffel Tower"]) == 0.0
    # repeated tokens count as often as they appear in both
    assert token_f1("a b b", ["b b c"]) == pytest.approx(2 * (2 / 2) * (2 / 3) / (1 + 2 / 3))
    assert token_f1("x", ["nope", "x"]) == 1.0


def test_token_f1_on_empty_answers_follows_squad_v2() -> None:
    assert token_f1("the", ["a"]) == 1.0  # both normalise to nothing
    assert token_f1("", ["Paris"]) == 0.0


CONTEXT = {
    "doc1#0": "Sourdough starters need feeding with flour and water every day.",
    "doc2#0": "Bread ovens reach 250 degrees.",
}


def test_valid_markers_and_quotes() -> None:
    answer = 'Feed it daily: "flour and water every day" [1]. Ovens get hot [2].'
    check = check_citations(answer, [CitedChunk(1, "doc1#0"), CitedChunk(2, "doc2#0")], CONTEXT)
    assert (check.checked, check.valid, check.problems) == (2, 2, [])
    assert check.score == 1.0


def test_a_quote_missing_from_its_chunk_is_invalid() -> None:
    answer = 'It says "feed it twice a week" [1].'
    check = check_citations(answer, [CitedChunk(1, "doc1#0")], CONTEXT)
    assert check.score == 0.0
    assert "feed it twice a week" in check.problems[0]


def test_a_quote_is_compared_without_case_or_spacing() -> None:
    answer = "\u201cSOURDOUGH   starters need\u201d [1]"
    assert check_citations(answer, [CitedChunk(1, "doc1#0")], CONTEXT).score == 1.0


def test_markers_without_a_source_or_a_retrieved_chunk_are_invalid() -> None:
    answer = "A [1]. B [3]. C [2]."
    cited = [CitedChunk(1, "doc1#0"), CitedChunk(2, "gone#4")]
    check = check_citations(answer, cited, CONTEXT)
    assert (check.checked, check.valid) == (3, 1)
    assert any("[3] names no source" in p for p in check.problems)
    assert any("gone#4" in p for p in check.problems)
    assert check.score == pytest.approx(1 / 3)


def test_implicit_citations_are_checked_and_no_citation_is_no_score() -> None:
    # gatehouse cites every source when the model cites none
    implicit = check_citations("Plain answer.", [CitedChunk(1, "doc1#0")], CONTEXT)
    assert (implicit.checked, implicit.valid) == (1, 1)
    nothing = check_citations("I don't know.", [], CONTEXT)
    assert nothing.checked == 0
    assert nothing.score is None


def test_one_quote_before_two_markers_must_be_in_both() -> None:
    answer = '"reach 250 degrees" [1][2]'
    check = check_citations(answer, [CitedChunk(1, "doc1#0"), CitedChunk(2, "doc2#0")], CONTEXT)
    assert (check.checked, check.valid) == (2, 1)


def test_citation_markers_are_no_part_of_the_answer() -> None:
    assert strip_citations("Paris [1][2], France [3].") == "Paris , France ."
    assert exact_match(strip_citations("Paris [1]"), ["Paris"]) == 1.0
