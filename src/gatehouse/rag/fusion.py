"""Rank fusion: the hybrid default, reciprocal rank fusion, normalised score fusion.

Pure functions over scores, best first; no I/O.

The hybrid default (:func:`hybrid`) mixes, for every candidate, its dense and
its keyword score, each z-normalised over the candidates, with a per-query
dense weight (:func:`dense_weight`) that depends on two query signals shown to
transfer between labelled sets (leave-one-set-out, ``bench/retrieval.py``):

- the embedding model's vocabulary coverage of the query: a query the model
  reads as word fragments (another script) gets no dense weight;
- the keyword confidence (:func:`keyword_confidence`): the idf-weighted share
  of the query's terms that the best keyword hit holds. A hit that holds the
  whole query is strong evidence and keeps the keyword weight; a hit that
  matches one word of a descriptive or category query ("South American
  capitals" matching every document that says "capital") is weak, and the
  mix leans on dense.

:func:`adaptive` weighs lists by how far their top scores stand out; it is
kept for callers that fuse lists without both scores per candidate.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)

RRF_K = 60


@dataclass(frozen=True, slots=True)
class HybridRule:
    """The constants of the hybrid mix.

    The dense weight is ``dense_strong_keyword`` when the best keyword hit
    holds the whole query (confidence 1), rises linearly to ``dense_weak_keyword``
    as the confidence falls to ``confident_from``, and stays there below it.
    Vocabulary coverage scales it down to 0 between ``coverage_high`` and
    ``coverage_low``. ``document_share`` of the keyword side is the whole
    document's score. ``feedback_docs`` best hits of a first mix give the
    keyword query its feedback terms (0: no feedback,
    :func:`gatehouse.rag.retrieval.retrieve`). The defaults were chosen by
    leaving one labelled set out at a time (docs/rag.md, ``bench/retrieval.py``).
    """

    dense_strong_keyword: float = 0.5
    dense_weak_keyword: float = 0.8
    confident_from: float = 0.5
    coverage_low: float = 0.25
    coverage_high: float = 0.5
    document_share: float = 0.5
    feedback_docs: int = 5


DEFAULT_RULE = HybridRule()


def keyword_confidence(idf: Mapping[str, float], matched: Collection[str]) -> float:
    """The idf-weighted share of the query's terms (``idf``: term -> idf) found in ``matched``.

    ``matched`` is the term set of the best keyword hit; 0 when the query has no terms.
    """
    total = sum(idf.values())
    if total <= 0:
        return 0.0
    return sum(weight for term, weight in idf.items() if term in matched) / total


def dense_weight(coverage: float, confidence: float, rule: HybridRule = DEFAULT_RULE) -> float:
    """The dense share of the hybrid mix for a query with these signals (:class:`HybridRule`)."""
    span = rule.coverage_high - rule.coverage_low
    readable = _clip((coverage - rule.coverage_low) / span) if span > 0 else float(coverage > 0)
    if rule.confident_from < 1.0:
        trusted = _clip((confidence - rule.confident_from) / (1.0 - rule.confident_from))
    else:
        trusted = float(confidence >= 1.0)
    weak, strong = rule.dense_weak_keyword, rule.dense_strong_keyword
    return readable * (weak - (weak - strong) * trusted)


def hybrid(
    candidates: Sequence[K],
    dense: Sequence[float] | None,
    keyword: Sequence[float],
    weight: float,
    k: int,
    reference: Sequence[bool] | None = None,
    *,
    document_keyword: Sequence[float] | None = None,
    document_share: float = 0.5,
) -> list[tuple[K, float]]:
    """The ``k`` best candidates by ``weight * z(dense) + (1 - weight) * z(keyword)``.

    ``dense`` and ``keyword`` hold every candidate's score (``dense`` is None
    when the query has no vector). ``document_keyword``, when given, is the
    keyword score of each candidate's whole document, blended into the
    keyword side with ``document_share``. Each score list is standardised by
    its mean and deviation over the ``reference`` candidates (all by
    default), so the statistics can be kept independent of ``k``. A flat
    list (all scores equal: no keyword matched) standardises to zeros and
    leaves the order to the other. Ties keep candidate order.
    """
    if not candidates:
        return []
    ref = np.ones(len(candidates), dtype=bool) if reference is None else np.asarray(reference)
    kw = _z(np.asarray(keyword, dtype=np.float64), ref)
    if document_keyword is not None and document_share > 0:
        documents = _z(np.asarray(document_keyword, dtype=np.float64), ref)
        kw = (1 - document_share) * kw + document_share * documents
    if dense is None:
        weight, dn = 0.0, np.zeros(len(candidates))
    else:
        dn = _z(np.asarray(dense, dtype=np.float64), ref)
    mixed = weight * dn + (1 - weight) * kw
    order = np.argsort(-mixed, kind="stable")[:k]
    return [(candidates[i], float(mixed[i])) for i in order]


@dataclass(frozen=True, slots=True)
class Fused:
    """The fused ranking plus the per-retriever weights that produced it."""

    ranking: list[tuple[object, float]]
    weights: dict[str, float]


def rrf(lists: Mapping[str, Sequence[tuple[K, float]]], k: int = RRF_K) -> list[tuple[K, float]]:
    """Reciprocal rank fusion: ``sum(1 / (k + rank))`` over the lists that hold a key."""
    scores: dict[K, float] = {}
    for results in lists.values():
        for rank, (key, _) in enumerate(results, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return _sorted(scores)


def minmax(results: Sequence[tuple[K, float]]) -> dict[K, float]:
    """Scores rescaled to [0, 1] within the list (all 1.0 when the list is flat)."""
    if not results:
        return {}
    values = [score for _, score in results]
    low, high = min(values), max(values)
    span = high - low
    return {key: (score - low) / span if span > 0 else 1.0 for key, score in results}


def score_fusion(
    lists: Mapping[str, Sequence[tuple[K, float]]], weights: Mapping[str, float] | None = None
) -> list[tuple[K, float]]:
    """Weighted sum of min-max normalised scores (a key absent from a list scores 0 there)."""
    scores: dict[K, float] = {}
    for name, results in lists.items():
        weight = 1.0 if weights is None else weights.get(name, 0.0)
        if weight <= 0:
            continue
        for key, value in minmax(results).items():
            scores[key] = scores.get(key, 0.0) + weight * value
    return _sorted(scores)


def separation(results: Sequence[tuple[object, float]], top: int = 3) -> float:
    """How far the best few scores stand above the rest of the candidate list.

    The mean z-score of the ``top`` best scores against the mean and standard
    deviation of the whole list; 0 for lists too short to tell.
    """
    values = [score for _, score in results]
    if len(values) < max(top + 2, 5):
        return 0.0
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    if std <= 1e-12:
        return 0.0
    head = values[:top]
    return max(0.0, (sum(head) / len(head) - mean) / std)


def adaptive_weights(lists: Mapping[str, Sequence[tuple[object, float]]]) -> dict[str, float]:
    """Per-query weights proportional to each list's :func:`separation`, summing to 1."""
    raw = {name: separation(results) for name, results in lists.items()}
    total = sum(raw.values())
    if total <= 0:
        return {name: 1.0 / len(lists) for name in lists} if lists else {}
    return {name: value / total for name, value in raw.items()}


def adaptive(lists: Mapping[str, Sequence[tuple[K, float]]]) -> Fused:
    """Normalised score fusion with :func:`adaptive_weights` for this query."""
    weights = adaptive_weights(lists)
    return Fused(ranking=list(score_fusion(lists, weights)), weights=weights)


def _sorted(scores: Mapping[K, float]) -> list[tuple[K, float]]:
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def _z(values: np.ndarray[Any, Any], reference: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``values`` standardised by the mean and deviation of ``values[reference]``."""
    base = values[reference]
    std = float(base.std()) if len(base) else 0.0
    return (values - base.mean()) / std if std > 0 else np.zeros_like(values)
