"""Replaced rows do not pile up in the in-memory indexes (seen preparing bench/soak.py).

A collection whose documents are replaced over and over keeps the same live
rows, but each replacement deleted the old chunk rows and added new ones: both
indexes kept every deleted position for ever. They now compact once most
positions are dead, and answer as an index holding only the live rows would.
Before, the HNSW graph of such a collection failed its searches once deleted
nodes far outnumbered live ones (hnswlib: "Cannot return the results in a
contiguous 2D array"), which the test's per-round search would hit.
"""

from __future__ import annotations

import numpy as np
import pytest

from gatehouse.rag import keyword, vector
from gatehouse.rag.keyword import BM25Index
from gatehouse.rag.vector import EmbeddedVectorIndex

from .vector_index_conformance import unit


def same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> bool:
    """The same rows in the same order, with the same scores (to float32 rounding)."""
    return [r for r, _ in got] == [r for r, _ in want] and [s for _, s in got] == pytest.approx(
        [s for _, s in want], rel=1e-5
    )


LIVE = 100
ROUNDS = 30  # each replaces every row: 3000 deletions


@pytest.mark.parametrize("ann_threshold", [10**9, 0], ids=["exact", "hnsw"])
def test_vector_index_memory_follows_live_rows(ann_threshold: int) -> None:
    rng = np.random.default_rng(5)
    index = EmbeddedVectorIndex(16, ann_threshold=ann_threshold)
    rowids = list(range(LIVE))
    index.add(rowids, unit(rng.normal(size=(LIVE, 16))))
    most = 0
    for round_ in range(1, ROUNDS + 1):
        new = [round_ * LIVE + r for r in range(LIVE)]
        index.remove(rowids)
        vectors = unit(rng.normal(size=(LIVE, 16)))
        index.add(new, vectors)
        rowids = new
        index.search(vectors[0], 3)  # builds the graph in the HNSW case
        most = max(most, index.positions)
    assert len(index) == LIVE
    assert most <= LIVE + vector.COMPACT_MIN_DEAD
    fresh = EmbeddedVectorIndex(16, ann_threshold=10**9)
    fresh.add(rowids, vectors)
    for row in range(0, LIVE, 10):
        assert same(index.search(vectors[row], 5, exact=True), fresh.search(vectors[row], 5))
        assert {r for r, _ in index.search(vectors[row], 5)} <= set(rowids)


def test_bm25_memory_follows_live_rows() -> None:
    index = BM25Index(language="en")
    fresh = BM25Index(language="en")
    rowids = list(range(LIVE))
    index.add((r, ["gateway", f"word{r}"]) for r in rowids)
    most = 0
    for round_ in range(1, ROUNDS + 1):
        new = [round_ * LIVE + r for r in range(LIVE)]
        index.remove(rowids)
        index.add((rowid, ["gateway", f"round{round_}", f"word{r}"]) for r, rowid in enumerate(new))
        rowids = new
        most = max(most, index.positions)
    fresh.add((rowid, ["gateway", f"round{ROUNDS}", f"word{r}"]) for r, rowid in enumerate(rowids))
    assert len(index) == LIVE
    assert most <= LIVE + keyword.COMPACT_MIN_DEAD
    for query in (["word7"], ["gateway", "word42"], [f"round{ROUNDS}", "word3"]):
        assert same(index.search_terms(query, 5), fresh.search_terms(query, 5))
    # terms only deleted rows had are gone, not kept as empty postings
    assert index.idf("round1") == fresh.idf("round1")
    assert "round1" not in index._postings


def test_a_graph_that_gives_up_is_answered_by_the_exact_scan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """hnswlib raises when its walk finds fewer than k live nodes (seen in this file's
    hnsw case now and then, its graph built on several threads): never a failed search."""
    rng = np.random.default_rng(7)
    index = EmbeddedVectorIndex(16, ann_threshold=0)
    vectors = unit(rng.normal(size=(200, 16)))
    index.add(list(range(200)), vectors)
    index.search(vectors[0], 3)  # builds the graph
    graph = index._graph()

    class GivesUp:
        def __getattr__(self, name: str) -> object:
            return getattr(graph, name)

        def knn_query(self, *args: object, **kwargs: object) -> object:
            raise RuntimeError("Cannot return the results in a contiguous 2D array.")

    monkeypatch.setattr(index, "_graph", GivesUp)
    for row in (0, 17, 150):
        assert same(index.search(vectors[row], 5), index.search(vectors[row], 5, exact=True))
