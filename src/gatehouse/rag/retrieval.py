"""Dense, keyword and hybrid retrieval over one collection's indexes; MMR.

The hybrid default, per query:

1. Candidates: the ``depth`` best of dense search and of keyword search.
   The keyword query is expanded once by pseudo-relevance feedback (RM3
   style): the most telling terms of its own first ``FEEDBACK_DOCS`` hits are
   added, the original terms counting double.
2. Every candidate gets *both* scores (the missing one computed exactly), so
   a passage found by one retriever is not penalised for being outside the
   other's short list.
3. Each score is z-normalised over the candidates and mixed with a per-query
   dense weight: ``DENSE_WEIGHT`` scaled by how well the embedding model's
   vocabulary covers the query (the share of query words it holds as a whole
   token). A query the model reads as word fragments (another script, rare
   jargon) leans on keywords; a query in the model's vocabulary gets the
   full dense weight. This is a property of the query and the model, not of
   a data set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from gatehouse.rag import fusion
from gatehouse.rag.index import VectorIndex
from gatehouse.rag.keyword import BM25Index

Mode = Literal["hybrid", "dense", "keyword", "rrf"]

DEPTH = 30
DENSE_WEIGHT = 0.6
FEEDBACK_DOCS = 5
FEEDBACK_TERMS = 5
ORIGINAL_WEIGHT = 2.0
DOCUMENT_SHARE = 0.5
# Coverage ramp: below LOW the dense vector is built from fragments and gets
# no weight; from HIGH on the model knows the query well enough for full weight.
COVERAGE_LOW, COVERAGE_HIGH = 0.25, 0.5


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    terms: list[str]
    vector: np.ndarray[Any, np.dtype[np.float32]] | None
    coverage: float = 1.0


def dense_weight(coverage: float) -> float:
    """The dense share of the hybrid mix for a query with this vocabulary coverage."""
    ramp = (coverage - COVERAGE_LOW) / (COVERAGE_HIGH - COVERAGE_LOW)
    return DENSE_WEIGHT * min(1.0, max(0.0, ramp))


def expand(terms: Sequence[str], keywords: BM25Index, allowed: set[int] | None) -> dict[str, float]:
    """The query terms plus feedback terms from the query's own best keyword hits."""
    weighted: dict[str, float] = {t: ORIGINAL_WEIGHT * n for t, n in Counter(terms).items()}
    feedback = keywords.search_terms(terms, FEEDBACK_DOCS, allowed)
    scores: dict[str, float] = {}
    for rowid, score in feedback:
        counts = keywords.terms_of(rowid)
        length = sum(counts.values()) or 1
        for term, freq in counts.items():
            scores[term] = scores.get(term, 0.0) + score * freq / length
    for term in sorted(scores, key=scores.__getitem__, reverse=True)[:FEEDBACK_TERMS]:
        weighted[term] = weighted.get(term, 0.0) + 1.0
    return weighted


def retrieve(
    query: Query,
    vectors: VectorIndex,
    keywords: BM25Index,
    k: int,
    mode: Mode,
    allowed: set[int] | None = None,
    *,
    documents: tuple[BM25Index, Mapping[int, int]] | None = None,
) -> list[tuple[int, float]]:
    """The ``k`` best ``(rowid, score)`` for ``query``, best first.

    ``documents`` is a whole-document keyword index and the row -> document
    key map; in hybrid mode a chunk's keyword evidence is then blended with
    its document's (``DOCUMENT_SHARE``), so a chunk of a document that is
    about the query as a whole is not lost because the query's words are
    spread over several of its chunks.
    """
    predicate: Callable[[int], bool] | None = allowed.__contains__ if allowed is not None else None
    if mode == "dense":
        assert query.vector is not None
        return vectors.search(query.vector, k, predicate)
    if mode == "keyword":
        return keywords.search_terms(query.terms, k, allowed)
    depth = max(DEPTH, k)
    dense = vectors.search(query.vector, depth, predicate) if query.vector is not None else []
    if mode == "rrf":
        return fusion.rrf(
            {"dense": dense, "keyword": keywords.search_terms(query.terms, depth, allowed)}
        )[:k]
    expanded = expand(query.terms, keywords, allowed) if query.terms else {}
    keyword = keywords.search_terms(expanded, depth, allowed)
    return fuse(query, dense, keyword, expanded, vectors, keywords, k, documents)


def fuse(
    query: Query,
    dense: Sequence[tuple[int, float]],
    keyword: Sequence[tuple[int, float]],
    expanded: Mapping[str, float],
    vectors: VectorIndex,
    keywords: BM25Index,
    k: int,
    documents: tuple[BM25Index, Mapping[int, int]] | None = None,
) -> list[tuple[int, float]]:
    """The hybrid mix of the ``dense`` and ``keyword`` candidate lists (steps 2 and 3 above).

    ``expanded`` is the weighted keyword query that found ``keyword``;
    ``documents`` as for :func:`retrieve`.
    """
    candidates = list(dict.fromkeys([r for r, _ in dense] + [r for r, _ in keyword]))
    if not candidates:
        return []
    # Normalisation statistics always come from the top-DEPTH candidates of
    # each list, so asking for more results never reorders the first ones.
    reference = {r for r, _ in dense[:DEPTH]} | {r for r, _ in keyword[:DEPTH]}
    ref = np.asarray([r in reference for r in candidates], dtype=bool)
    kw_scores = _z(np.asarray(keywords.score_rows(expanded, candidates), dtype=np.float64), ref)
    if documents is not None and DOCUMENT_SHARE > 0:
        index, row_doc = documents
        keys = [row_doc.get(r, -1) for r in candidates]
        doc_scores = np.asarray(index.score_rows(expanded, keys), dtype=np.float64)
        kw_scores = (1 - DOCUMENT_SHARE) * kw_scores + DOCUMENT_SHARE * _z(doc_scores, ref)
    if query.vector is not None:
        dense_scores = (vectors.vectors_of(candidates) @ query.vector).astype(np.float64)
    else:
        dense_scores = np.zeros(len(candidates))
    weight = dense_weight(query.coverage) if query.vector is not None else 0.0
    mixed = weight * _z(dense_scores, ref) + (1 - weight) * kw_scores
    order = np.argsort(-mixed, kind="stable")[:k]
    return [(candidates[i], float(mixed[i])) for i in order]


def mmr(
    hits: Sequence[tuple[int, float]],
    vectors: np.ndarray[Any, np.dtype[np.float32]],
    k: int,
    lambda_: float = 0.5,
) -> list[tuple[int, float]]:
    """Maximal marginal relevance: trade relevance for novelty against what is already picked.

    ``vectors[i]`` is the embedding of ``hits[i]``; relevance is the hit's
    score rescaled to [0, 1] within the list.
    """
    if not hits:
        return []
    relevance = np.asarray(list(fusion.minmax(list(enumerate(s for _, s in hits))).values()))
    chosen: list[int] = []
    remaining = list(range(len(hits)))
    while remaining and len(chosen) < k:
        if chosen:
            redundancy = (vectors[remaining] @ vectors[chosen].T).max(axis=1)
        else:
            redundancy = np.zeros(len(remaining))
        value = lambda_ * relevance[remaining] - (1 - lambda_) * redundancy
        best = remaining[int(np.argmax(value))]
        chosen.append(best)
        remaining.remove(best)
    return [hits[i] for i in chosen]


def _z(values: np.ndarray[Any, Any], reference: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``values`` standardised by the mean and deviation of ``values[reference]``."""
    base = values[reference]
    std = float(base.std())
    return (values - base.mean()) / std if std > 0 else np.zeros_like(values)
