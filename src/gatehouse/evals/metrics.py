"""Retrieval metrics from relevance judgments (qrels) and a ranking: pure, no I/O.

The definitions are trec_eval's (``ndcg_cut``, ``recall``, ``P``,
``recip_rank``, ``map_cut``), so figures compare with published ones:

- a document is *relevant* when its judged relevance is at least 1;
  unjudged documents are not relevant;
- nDCG@k uses linear gain (gain = relevance, negative relevance counts as 0)
  and the discount ``log2(rank + 1)``; the ideal ranking is built from *every*
  judged document of the query, not only the retrieved ones;
- nDCG_exp@k is the same with exponential gain ``2^relevance - 1`` (Burges et
  al.; ranx's ``ndcg_burges``), the form the BEIR sets' baselines in
  ``../shared/data`` and ``bench/retrieval.py`` report. With binary judgments
  the two are equal; with graded ones exponential gain weighs the top grades
  more (msmarco's hybrid run: 0.818 linear, 0.733 exponential);
- precision@k divides by k even when fewer than k documents were retrieved;
- MAP@k sums the precision at each relevant document within the first k and
  divides by the number of relevant documents of the query;
- MRR@k is the reciprocal rank of the first relevant document within the
  first k, 0 if there is none.

The mean is over every query of the qrels: a query missing from the ranking
scores 0 on every metric (``trec_eval -c``), and so does a query whose
judgments hold no relevant document (trec_eval evaluates such a query and
scores it 0 rather than leave it out; ranx's metrics return 0 for it too).
Queries of the ranking that the qrels do not judge are ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

Qrels = Mapping[str, Mapping[str, int]]
"""Query id -> document id -> judged relevance."""

Ranking = Mapping[str, Sequence[str]]
"""Query id -> document ids, best first."""

Scores = Mapping[str, Mapping[str, float]]
"""Query id -> document id -> retrieval score (a run before it is ranked)."""

RELEVANT = 1  # trec_eval's default relevance level


def ndcg(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Normalised discounted cumulative gain of the first ``k``, linear gain."""
    dcg = sum(_gain(judged.get(doc, 0)) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted((_gain(rel) for rel in judged.values()), reverse=True)[:k]
    idcg = sum(gain / math.log2(i + 2) for i, gain in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def ndcg_exp(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """nDCG of the first ``k`` with exponential gain ``2^rel - 1``."""
    dcg = sum(_exp_gain(judged.get(doc, 0)) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted((_exp_gain(rel) for rel in judged.values()), reverse=True)[:k]
    idcg = sum(gain / math.log2(i + 2) for i, gain in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Share of the query's relevant documents found in the first ``k``."""
    relevant = _relevant_count(judged)
    return _hits(ranked[:k], judged) / relevant if relevant else 0.0


def precision(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Relevant documents in the first ``k``, divided by ``k``."""
    return _hits(ranked[:k], judged) / k


def reciprocal_rank(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """1 / rank of the first relevant document within the first ``k``; 0 if none."""
    for i, doc in enumerate(ranked[:k]):
        if judged.get(doc, 0) >= RELEVANT:
            return 1.0 / (i + 1)
    return 0.0


def average_precision(ranked: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Mean of the precision at each relevant document within the first ``k``,
    over all the query's relevant documents (found or not)."""
    relevant = _relevant_count(judged)
    if not relevant:
        return 0.0
    hits = 0
    total = 0.0
    for i, doc in enumerate(ranked[:k]):
        if judged.get(doc, 0) >= RELEVANT:
            hits += 1
            total += hits / (i + 1)
    return total / relevant


MetricFunction = Callable[[Sequence[str], Mapping[str, int], int], float]

FUNCTIONS: dict[str, MetricFunction] = {
    "ndcg": ndcg,
    "ndcg_exp": ndcg_exp,
    "recall": recall,
    "precision": precision,
    "mrr": reciprocal_rank,
    "map": average_precision,
}


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric at one cut-off, named ``name@k`` (``ndcg@10``)."""

    name: str
    k: int

    @classmethod
    def parse(cls, text: str) -> Metric:
        """``ndcg@10`` -> Metric("ndcg", 10); ValueError naming the known metrics otherwise."""
        match = re.fullmatch(r"([a-z_]+)@([0-9]+)", text.strip().lower())
        if not match or match[1] not in FUNCTIONS or int(match[2]) < 1:
            known = ", ".join(f"{name}@k" for name in FUNCTIONS)
            raise ValueError(f"unknown metric {text!r}: use {known} with k >= 1")
        return cls(match[1], int(match[2]))

    def __str__(self) -> str:
        return f"{self.name}@{self.k}"

    def score(self, ranked: Sequence[str], judged: Mapping[str, int]) -> float:
        return FUNCTIONS[self.name](ranked, judged, self.k)


DEFAULT_METRICS: tuple[Metric, ...] = tuple(
    Metric.parse(name)
    for name in (
        "ndcg@10",
        "ndcg@100",
        "recall@10",
        "recall@100",
        "precision@10",
        "mrr@10",
        "map@100",
    )
)


def per_query(
    qrels: Qrels, ranking: Ranking, metrics: Iterable[Metric] = DEFAULT_METRICS
) -> dict[str, dict[str, float]]:
    """Every metric for every query of ``qrels``; a query absent from ``ranking`` scores 0."""
    chosen = list(metrics)
    return {
        query: {str(m): m.score(ranking.get(query, ()), judged) for m in chosen}
        for query, judged in qrels.items()
    }


def evaluate(
    qrels: Qrels, ranking: Ranking, metrics: Iterable[Metric] = DEFAULT_METRICS
) -> dict[str, float]:
    """Each metric's mean over every query of ``qrels`` (see the module docstring)."""
    chosen = list(metrics)
    if not qrels:
        raise ValueError("the qrels judge no query")
    rows = per_query(qrels, ranking, chosen)
    return {str(m): sum(row[str(m)] for row in rows.values()) / len(rows) for m in chosen}


def rank(scores: Scores) -> dict[str, list[str]]:
    """A run's documents in trec_eval's order: score descending, ties by document id
    descending. The rank column of a run file is ignored, as trec_eval ignores it."""
    return {
        query: [doc for doc, _ in sorted(docs.items(), key=lambda item: (item[1], item[0]))][::-1]
        for query, docs in scores.items()
    }


def _gain(relevance: int) -> float:
    return float(max(relevance, 0))


def _exp_gain(relevance: int) -> float:
    return 2.0 ** max(relevance, 0) - 1.0


def _relevant_count(judged: Mapping[str, int]) -> int:
    return sum(1 for rel in judged.values() if rel >= RELEVANT)


def _hits(ranked: Sequence[str], judged: Mapping[str, int]) -> int:
    return sum(1 for doc in ranked if judged.get(doc, 0) >= RELEVANT)
