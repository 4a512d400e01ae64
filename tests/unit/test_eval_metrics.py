"""Retrieval metrics on small cases computed by hand, and the averaging conventions."""

from __future__ import annotations

import math

import pytest

from gatehouse.evals import (
    DEFAULT_METRICS,
    Metric,
    average_precision,
    evaluate,
    ndcg,
    per_query,
    precision,
    rank,
    recall,
    reciprocal_rank,
)

# Graded judgments: a is the best, d next, b marginal, c judged not relevant;
# x is unjudged. Relevant at ranks 2 (a) and 4 (b).
JUDGED = {"a": 3, "b": 1, "c": 0, "d": 2}
RANKED = ["c", "a", "x", "b"]
LOG3 = math.log2(3)


def test_ndcg_uses_linear_gain_and_the_ideal_of_every_judged_document() -> None:
    ideal_3 = 3 + 2 / LOG3 + 1 / 2  # a, d, b: d was never retrieved but counts
    assert ndcg(RANKED, JUDGED, 3) == pytest.approx((3 / LOG3) / ideal_3)
    assert ndcg(RANKED, JUDGED, 3) == pytest.approx(0.39749, abs=1e-5)
    assert ndcg(RANKED, JUDGED, 4) == pytest.approx((3 / LOG3 + 1 / math.log2(5)) / ideal_3)
    assert ndcg(["a", "d", "b"], JUDGED, 3) == pytest.approx(1.0)
    assert ndcg(["c"], JUDGED, 10) == 0.0


def test_negative_relevance_gains_nothing() -> None:
    assert ndcg(["n", "a"], {"n": -2, "a": 1}, 2) == pytest.approx(1 / LOG3)


def test_recall_counts_relevant_documents_found_in_the_first_k() -> None:
    assert recall(RANKED, JUDGED, 1) == 0.0
    assert recall(RANKED, JUDGED, 2) == pytest.approx(1 / 3)
    assert recall(RANKED, JUDGED, 4) == pytest.approx(2 / 3)
    assert recall(RANKED, JUDGED, 100) == pytest.approx(2 / 3)


def test_precision_divides_by_k_even_past_the_end_of_the_ranking() -> None:
    assert precision(RANKED, JUDGED, 2) == pytest.approx(1 / 2)
    assert precision(RANKED, JUDGED, 4) == pytest.approx(2 / 4)
    assert precision(RANKED, JUDGED, 10) == pytest.approx(2 / 10)


def test_reciprocal_rank_stops_at_the_cut_off() -> None:
    assert reciprocal_rank(RANKED, JUDGED, 1) == 0.0
    assert reciprocal_rank(RANKED, JUDGED, 2) == pytest.approx(1 / 2)
    assert reciprocal_rank(["b", "a"], JUDGED, 10) == 1.0


def test_average_precision_divides_by_every_relevant_document() -> None:
    # Precision 1/2 at a (rank 2) and 2/4 at b (rank 4); d, never found, still counts.
    assert average_precision(RANKED, JUDGED, 4) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert average_precision(RANKED, JUDGED, 2) == pytest.approx((1 / 2) / 3)
    assert average_precision(["a", "d", "b"], JUDGED, 3) == pytest.approx(1.0)


def test_a_query_without_relevant_documents_scores_zero_everywhere() -> None:
    judged = {"c": 0, "e": 0}
    for metric in DEFAULT_METRICS:
        assert metric.score(["c", "e"], judged) == 0.0, metric


def test_the_mean_is_over_every_judged_query() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}
    ranking = {"q1": ["a"], "q9": ["z"]}  # q2 not run, q3 has nothing relevant, q9 unjudged
    scores = evaluate(qrels, ranking, [Metric("recall", 10), Metric("mrr", 10)])
    assert scores == {"recall@10": pytest.approx(1 / 3), "mrr@10": pytest.approx(1 / 3)}
    rows = per_query(qrels, ranking, [Metric("recall", 10)])
    assert rows == {"q1": {"recall@10": 1.0}, "q2": {"recall@10": 0.0}, "q3": {"recall@10": 0.0}}
    with pytest.raises(ValueError, match="no query"):
        evaluate({}, ranking)


def test_default_metrics_are_the_cli_contract() -> None:
    names = [str(m) for m in DEFAULT_METRICS]
    assert names == [
        "ndcg@10",
        "ndcg@100",
        "recall@10",
        "recall@100",
        "precision@10",
        "mrr@10",
        "map@100",
    ]


def test_rank_breaks_ties_as_trec_eval_does() -> None:
    # Score descending, then document id descending (byte order: "b" > "a" > "B").
    run = {"q": {"a": 1.0, "B": 1.0, "c": 2.0, "b": 1.0, "z": -1.0}}
    assert rank(run) == {"q": ["c", "b", "a", "B", "z"]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("ndcg@10", Metric("ndcg", 10)), (" MAP@100 ", Metric("map", 100))],
)
def test_metric_names_parse(text: str, expected: Metric) -> None:
    assert Metric.parse(text) == expected


@pytest.mark.parametrize("text", ["ndcg", "ndcg@0", "ndcg@x", "f1@10", "recall@-1"])
def test_bad_metric_names_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        Metric.parse(text)
