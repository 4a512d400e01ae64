"""Dense, keyword and hybrid retrieval over one collection's indexes; MMR.

The hybrid default, per query:

1. Candidates: the ``depth`` best of dense search and of keyword search.
2. Every candidate gets *both* scores (the missing one computed exactly), so
   a passage found by one retriever is not penalised for being outside the
   other's short list.
3. Each score is z-normalised over the candidates and mixed with a per-query
   dense weight (:func:`gatehouse.rag.fusion.dense_weight`), from two
   properties of the query, not of a data set: how well the embedding
   model's vocabulary covers it (the share of query words it holds as a
   whole token: a query the model reads as word fragments leans on keywords)
   and how much of it the best keyword hit holds (idf-weighted: a keyword
   hit that holds the whole query keeps the keyword's share, one that holds
   a single common word of it hands weight to dense).
4. Pseudo-relevance feedback (RM3 style): the most telling terms of the
   ``feedback_docs`` best hits of that first mix are added to the keyword
   query (the original terms counting double), and steps 1-3 run once more
   with it. The feedback comes from the *hybrid* ranking, not from keyword
   search's own first hits: those hold the query's words but, for a short
   entity query ("Wright inventor"), often name the wrong entity, and their
   terms pulled the second pass away from it.

The constants are :class:`gatehouse.rag.fusion.HybridRule`'s, read from
``fusion.DEFAULT_RULE`` at call time.
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
FEEDBACK_TERMS = 5
ORIGINAL_WEIGHT = 2.0


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    terms: list[str]
    vector: np.ndarray[Any, np.dtype[np.float32]] | None
    coverage: float = 1.0


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the hybrid mix decides from, for one query: both scores of every candidate.

    Raw scores: ``dense`` (None when the query has no vector), ``keyword``
    (the candidate chunk's BM25) and ``document_keyword`` (its whole
    document's, None without a document index). ``reference`` marks the
    candidates the normalisation statistics come from.
    """

    candidates: list[int]
    dense: list[float] | None
    keyword: list[float]
    document_keyword: list[float] | None
    reference: list[bool]
    coverage: float
    confidence: float


def feedback(terms: Sequence[str], rows: Sequence[int], keywords: BM25Index) -> dict[str, float]:
    """The query terms (counting double) plus the most telling terms of ``rows``, best first.

    A row's terms count by their share of the row and the row's reciprocal
    rank, so the best hit weighs most.
    """
    weighted: dict[str, float] = {t: ORIGINAL_WEIGHT * n for t, n in Counter(terms).items()}
    scores: dict[str, float] = {}
    for rank, rowid in enumerate(rows, start=1):
        counts = keywords.terms_of(rowid)
        length = sum(counts.values()) or 1
        for term, freq in counts.items():
            scores[term] = scores.get(term, 0.0) + freq / length / rank
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
    its document's (the rule's ``document_share``), so a chunk of a document that is
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
    rule = fusion.DEFAULT_RULE
    plain = {t: float(n) for t, n in Counter(query.terms).items()}
    keyword = keywords.search_terms(plain, depth, allowed) if plain else []
    if not plain or rule.feedback_docs <= 0:
        return fuse(query, dense, keyword, plain, vectors, keywords, k, documents, rule)
    first = fuse(
        query, dense, keyword, plain, vectors, keywords, rule.feedback_docs, documents, rule
    )
    expanded = feedback(query.terms, [r for r, _ in first], keywords)
    keyword = keywords.search_terms(expanded, depth, allowed)
    return fuse(query, dense, keyword, expanded, vectors, keywords, k, documents, rule)


def evidence(
    query: Query,
    dense: Sequence[tuple[int, float]],
    keyword: Sequence[tuple[int, float]],
    expanded: Mapping[str, float],
    vectors: VectorIndex,
    keywords: BM25Index,
    documents: tuple[BM25Index, Mapping[int, int]] | None = None,
) -> Evidence:
    """Both scores of every candidate of the ``dense`` and ``keyword`` lists (step 2 above)."""
    candidates = list(dict.fromkeys([r for r, _ in dense] + [r for r, _ in keyword]))
    # Normalisation statistics always come from the top-DEPTH candidates of
    # each list, so asking for more results never reorders the first ones.
    top = {r for r, _ in dense[:DEPTH]} | {r for r, _ in keyword[:DEPTH]}
    reference = [r in top for r in candidates]
    kw_scores = keywords.score_rows(expanded, candidates)
    doc_scores = None
    if documents is not None and candidates:
        index, row_doc = documents
        doc_scores = index.score_rows(expanded, [row_doc.get(r, -1) for r in candidates])
    dense_scores = None
    if query.vector is not None and candidates:
        dense_scores = (vectors.vectors_of(candidates) @ query.vector).astype(float).tolist()
    confidence = 0.0
    if keyword:
        # The original query's terms, not the expansion: is the best hit about the whole query?
        idf = {term: keywords.idf(term) for term in dict.fromkeys(query.terms)}
        confidence = fusion.keyword_confidence(idf, keywords.terms_of(keyword[0][0]).keys())
    return Evidence(
        candidates, dense_scores, kw_scores, doc_scores, reference, query.coverage, confidence
    )


def fuse(
    query: Query,
    dense: Sequence[tuple[int, float]],
    keyword: Sequence[tuple[int, float]],
    expanded: Mapping[str, float],
    vectors: VectorIndex,
    keywords: BM25Index,
    k: int,
    documents: tuple[BM25Index, Mapping[int, int]] | None = None,
    rule: fusion.HybridRule | None = None,
) -> list[tuple[int, float]]:
    """The hybrid mix of the ``dense`` and ``keyword`` candidate lists (steps 2 and 3 above).

    ``expanded`` is the weighted keyword query that found ``keyword``;
    ``documents`` as for :func:`retrieve`; ``rule`` defaults to ``fusion.DEFAULT_RULE``.
    """
    rule = rule or fusion.DEFAULT_RULE
    found = evidence(query, dense, keyword, expanded, vectors, keywords, documents)
    weight = fusion.dense_weight(found.coverage, found.confidence, rule)
    return fusion.hybrid(
        found.candidates,
        found.dense,
        found.keyword,
        weight,
        k,
        found.reference,
        document_keyword=found.document_keyword,
        document_share=rule.document_share,
    )


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
