"""Rank fusion: reciprocal rank fusion, normalised score fusion, and the adaptive default.

Pure functions over ``(key, score)`` lists, best first; no I/O.

The adaptive fusion weighs each retriever *per query* by how much its own
result list looks like it found something. A retriever that carries signal
for a query puts a few candidates clearly above the bulk of its candidates;
one that carries none (an English embedding model reading Arabic, a keyword
search whose terms all miss) returns a flat list where the top score is
barely above the rest. The weight is that separation, measured as the
z-score of the top scores against the retriever's own candidate
distribution, so no dataset-specific constant is involved.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

RRF_K = 60


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
