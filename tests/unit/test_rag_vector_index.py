"""Conformance suite for vector indexes: every backend runs the same checks.

The embedded index runs it twice, in exact mode and with the HNSW graph
forced on (threshold 0), so both search paths keep the same contract.
"""

from __future__ import annotations

import numpy as np
import pytest

from gatehouse.rag.vector import EmbeddedVectorIndex


def unit(rows: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(params=["exact", "hnsw"])
def index(request: pytest.FixtureRequest) -> EmbeddedVectorIndex:
    return EmbeddedVectorIndex(8, ann_threshold=10**9 if request.param == "exact" else 0)


def test_nearest_first_with_cosine_scores(index: EmbeddedVectorIndex) -> None:
    vectors = unit(np.eye(8)[:4] + 0.01)
    index.add([10, 11, 12, 13], vectors)
    hits = index.search(vectors[2], 2)
    assert hits[0][0] == 12
    assert hits[0][1] == pytest.approx(1.0, abs=1e-4)
    assert len(hits) == 2
    assert hits[0][1] >= hits[1][1]


def test_removed_rows_are_never_returned(index: EmbeddedVectorIndex) -> None:
    vectors = unit(np.random.default_rng(0).normal(size=(50, 8)))
    index.add(list(range(50)), vectors)
    index.remove([7, 8])
    assert len(index) == 48
    found = {rowid for rowid, _ in index.search(vectors[7], 50)}
    assert 7 not in found
    assert 8 not in found


def test_re_adding_a_row_replaces_its_vector(index: EmbeddedVectorIndex) -> None:
    vectors = unit(np.eye(8)[:2] + 0.01)
    index.add([1, 2], vectors)
    index.add([1], vectors[1:2])
    assert len(index) == 2
    assert {r for r, _ in index.search(vectors[1], 2)} == {1, 2}
    assert index.search(vectors[0], 1)[0][1] < 0.5


def test_filter_limits_the_candidates(index: EmbeddedVectorIndex) -> None:
    vectors = unit(np.random.default_rng(1).normal(size=(100, 8)))
    index.add(list(range(100)), vectors)
    hits = index.search(vectors[3], 5, lambda rowid: rowid % 2 == 0)
    assert len(hits) == 5
    assert all(rowid % 2 == 0 for rowid, _ in hits)


def test_rows_added_after_search_are_found(index: EmbeddedVectorIndex) -> None:
    vectors = unit(np.random.default_rng(2).normal(size=(40, 8)))
    index.add(list(range(20)), vectors[:20])
    index.search(vectors[0], 1)
    index.add(list(range(20, 40)), vectors[20:])
    assert index.search(vectors[33], 1)[0][0] == 33


def test_empty_index_returns_nothing(index: EmbeddedVectorIndex) -> None:
    assert index.search(np.ones(8, dtype=np.float32), 3) == []


def test_hnsw_recall_against_exact() -> None:
    rng = np.random.default_rng(3)
    vectors = unit(rng.normal(size=(3000, 32)))
    ann = EmbeddedVectorIndex(32, ann_threshold=0)
    ann.add(list(range(3000)), vectors)
    queries = unit(rng.normal(size=(50, 32)))
    recall = []
    for query in queries:
        exact = {r for r, _ in ann.search(query, 10, exact=True)}
        approx = {r for r, _ in ann.search(query, 10)}
        recall.append(len(exact & approx) / 10)
    assert float(np.mean(recall)) >= 0.95
