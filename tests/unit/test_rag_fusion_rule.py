"""The hybrid fusion rule on synthetic score lists: pure logic, no index, no model."""

from __future__ import annotations

import pytest

from gatehouse.rag import fusion, retrieval
from gatehouse.rag.keyword import BM25Index
from gatehouse.rag.text import analyze

CANDIDATES = ["a", "b", "c", "d", "e"]
# Dense puts "a" first and "b" second; keyword puts "b" alone far ahead.
DENSE = [0.9, 0.7, 0.5, 0.5, 0.5]
KEYWORD = [0.0, 10.0, 0.0, 0.0, 0.0]


def order(ranked: list[tuple[str, float]]) -> list[str]:
    return [key for key, _ in ranked]


def test_dense_weight_follows_keyword_confidence() -> None:
    rule = fusion.DEFAULT_RULE
    assert fusion.dense_weight(1.0, 1.0) == pytest.approx(rule.dense_strong_keyword)
    assert fusion.dense_weight(1.0, rule.confident_from) == pytest.approx(rule.dense_weak_keyword)
    assert fusion.dense_weight(1.0, 0.0) == pytest.approx(rule.dense_weak_keyword)
    between = fusion.dense_weight(1.0, (1.0 + rule.confident_from) / 2)
    assert rule.dense_strong_keyword < between < rule.dense_weak_keyword
    # Dense-dominant prior: the keyword side never outweighs dense for a readable query.
    assert fusion.dense_weight(1.0, 1.0) >= 0.5
    assert fusion.dense_weight(1.0, 0.0) > fusion.dense_weight(1.0, 1.0)


def test_keyword_confidence_is_the_idf_share_the_best_hit_holds() -> None:
    idf = {"south": 2.5, "american": 3.5, "capit": 2.0}
    assert fusion.keyword_confidence(idf, {"capit"}) == pytest.approx(0.25)
    assert fusion.keyword_confidence(idf, {"capit", "south", "american", "city"}) == 1.0
    assert fusion.keyword_confidence(idf, set()) == 0.0
    assert fusion.keyword_confidence({}, {"capit"}) == 0.0


@pytest.mark.parametrize("confidence", [0.0, 0.5, 1.0])
def test_when_dense_and_keyword_agree_the_order_is_theirs(confidence: float) -> None:
    dense = [0.9, 0.8, 0.6, 0.4, 0.2]
    keyword = [12.0, 9.0, 5.0, 1.0, 0.0]
    weight = fusion.dense_weight(1.0, confidence)
    ranked = fusion.hybrid(CANDIDATES, dense, keyword, weight, 5)
    assert order(ranked) == CANDIDATES
    assert [score for _, score in ranked] == sorted((s for _, s in ranked), reverse=True)


def test_when_they_disagree_a_confident_keyword_hit_lifts_denses_runner_up() -> None:
    # The best keyword hit holds the whole query: keyword's "b" (dense's second) goes first.
    weight = fusion.dense_weight(1.0, 1.0)
    assert order(fusion.hybrid(CANDIDATES, DENSE, KEYWORD, weight, 2)) == ["b", "a"]


def test_when_they_disagree_a_weak_keyword_hit_does_not_overrule_dense() -> None:
    # The best keyword hit holds a fifth of the query (one common word): dense's "a" stays first.
    weight = fusion.dense_weight(1.0, 0.2)
    assert order(fusion.hybrid(CANDIDATES, DENSE, KEYWORD, weight, 2)) == ["a", "b"]


def test_a_query_the_embedding_model_cannot_read_is_ranked_by_keyword() -> None:
    weight = fusion.dense_weight(0.1, 0.2)  # another script: word fragments only
    assert weight == 0.0
    assert order(fusion.hybrid(CANDIDATES, DENSE, KEYWORD, weight, 1)) == ["b"]


def test_an_empty_keyword_side_leaves_the_dense_order() -> None:
    ranked = fusion.hybrid(CANDIDATES, [0.2, 0.9, 0.5, 0.7, 0.1], [0.0] * 5, 0.6, 5)
    assert order(ranked) == ["b", "d", "c", "a", "e"]


def test_an_empty_dense_side_leaves_the_keyword_order() -> None:
    ranked = fusion.hybrid(CANDIDATES, None, [1.0, 0.0, 3.0, 2.0, 0.5], 0.8, 5)
    assert order(ranked) == ["c", "d", "a", "e", "b"]


def test_no_candidates_give_no_results() -> None:
    assert fusion.hybrid([], [], [], 0.6, 10) == []
    assert fusion.hybrid([], None, [], 0.6, 10) == []


def test_statistics_come_from_the_reference_candidates_only() -> None:
    # A tail candidate outside the reference must not move the scores of the others.
    head = fusion.hybrid(CANDIDATES, DENSE, KEYWORD, 0.6, 5)
    longer = fusion.hybrid(
        [*CANDIDATES, "f"], [*DENSE, 0.0], [*KEYWORD, 0.0], 0.6, 6, [True] * 5 + [False]
    )
    assert longer[:5] == head


def test_document_keyword_evidence_is_blended_in() -> None:
    # "c"'s chunk misses the query but its document holds it: half the keyword side comes back.
    chunk = [0.0, 10.0, 0.0, 0.0, 0.0]
    document = [0.0, 10.0, 10.0, 0.0, 0.0]
    ranked = fusion.hybrid(CANDIDATES, None, chunk, 0.0, 3, document_keyword=document)
    assert order(ranked)[:2] == ["b", "c"]
    only_chunks = fusion.hybrid(
        CANDIDATES, None, chunk, 0.0, 3, document_keyword=document, document_share=0.0
    )
    assert order(only_chunks)[0] == "b"
    assert dict(only_chunks)["c"] < dict(ranked)["c"]


def test_feedback_terms_come_from_the_given_hits_best_first() -> None:
    # The rows are the first mix's best hits: the first one's terms weigh double the second's.
    index = BM25Index()
    first = analyze("airplane glider flight")
    second = analyze("novel fiction story poem")
    index.add([(1, first), (2, second)])
    expanded = retrieval.feedback(["wright"], [1, 2], index)
    assert expanded["wright"] == retrieval.ORIGINAL_WEIGHT
    assert set(first) <= set(expanded)
    assert len(set(second) & set(expanded)) == retrieval.FEEDBACK_TERMS - len(first)
    assert all(expanded[t] == 1.0 for t in first)
    # Reversed order, reversed preference.
    assert set(second) <= set(retrieval.feedback(["wright"], [2, 1], index))
