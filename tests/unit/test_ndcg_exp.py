"""nDCG with exponential gain (``ndcg_exp@k``), the form the BEIR baselines and
``bench/retrieval.py`` report: checked by hand and against trec_eval."""

from __future__ import annotations

import math

import pytest

from gatehouse.evals import Metric, evaluate, rank

from .test_eval_reference import random_set, trec_eval_means


def test_by_hand() -> None:
    judged = {"a": 3, "b": 1, "c": 2, "z": 0}
    ranked = ["b", "a", "x"]
    dcg = (2**1 - 1) / math.log2(2) + (2**3 - 1) / math.log2(3)
    ideal = (2**3 - 1) / math.log2(2) + (2**2 - 1) / math.log2(3) + (2**1 - 1) / math.log2(4)
    assert Metric.parse("ndcg_exp@3").score(ranked, judged) == pytest.approx(dcg / ideal)
    assert Metric.parse("NDCG_EXP@3") == Metric("ndcg_exp", 3)


def test_binary_judgments_give_the_linear_figure() -> None:
    judged = {"a": 1, "b": 0, "c": 1}
    ranked = ["b", "c", "q", "a"]
    for k in (1, 2, 4, 10):
        assert Metric("ndcg_exp", k).score(ranked, judged) == pytest.approx(
            Metric("ndcg", k).score(ranked, judged)
        )


@pytest.mark.parametrize("seed", range(3))
def test_equals_trec_eval_on_exponentially_regraded_qrels(seed: int) -> None:
    # trec_eval's ndcg_cut gains the judged relevance itself: judging each
    # document 2^rel - 1 instead makes its figure the exponential-gain one.
    qrels, run = random_set(seed)
    regraded = {q: {d: 2 ** max(r, 0) - 1 for d, r in docs.items()} for q, docs in qrels.items()}
    ours = evaluate(qrels, rank(run), [Metric("ndcg_exp", 10), Metric("ndcg_exp", 100)])
    theirs = trec_eval_means(regraded, run, {"ndcg_cut.10,100"})
    assert ours["ndcg_exp@10"] == pytest.approx(theirs["ndcg_cut_10"], abs=1e-9)
    assert ours["ndcg_exp@100"] == pytest.approx(theirs["ndcg_cut_100"], abs=1e-9)
