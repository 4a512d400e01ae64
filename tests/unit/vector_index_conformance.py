"""What every vector index must do (``gatehouse.rag.index.VectorIndex``).

Each backend's tests subclass :class:`VectorIndexConformance` and provide an
``index`` fixture: an empty index of 8 dimensions. The embedded index runs it
in exact mode and with the HNSW graph forced on
(``tests/unit/test_rag_vector_index.py``); the Chroma server runs it in
``tests/integration/test_rag_chroma.py``. A new backend adds one such class.
"""

from __future__ import annotations

import numpy as np
import pytest

from gatehouse.rag.index import VectorIndex

DIMENSIONS = 8


def unit(rows: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


class VectorIndexConformance:
    """The contract's checks; subclasses provide the ``index`` fixture."""

    @pytest.fixture
    def index(self) -> VectorIndex:
        raise NotImplementedError("a backend's test class provides the index fixture")

    def test_nearest_first_with_cosine_scores(self, index: VectorIndex) -> None:
        vectors = unit(np.eye(DIMENSIONS)[:4] + 0.01)
        index.add([10, 11, 12, 13], vectors)
        hits = index.search(vectors[2], 2)
        assert hits[0][0] == 12
        assert hits[0][1] == pytest.approx(1.0, abs=1e-4)
        assert len(hits) == 2
        assert hits[0][1] >= hits[1][1]

    def test_removed_rows_are_never_returned(self, index: VectorIndex) -> None:
        vectors = unit(np.random.default_rng(0).normal(size=(50, DIMENSIONS)))
        index.add(list(range(50)), vectors)
        index.remove([7, 8])
        assert len(index) == 48
        found = {rowid for rowid, _ in index.search(vectors[7], 50)}
        assert 7 not in found
        assert 8 not in found

    def test_re_adding_a_row_replaces_its_vector(self, index: VectorIndex) -> None:
        vectors = unit(np.eye(DIMENSIONS)[:2] + 0.01)
        index.add([1, 2], vectors)
        index.add([1], vectors[1:2])
        assert len(index) == 2
        assert {r for r, _ in index.search(vectors[1], 2)} == {1, 2}
        assert index.search(vectors[0], 1)[0][1] < 0.5

    def test_filter_limits_the_candidates(self, index: VectorIndex) -> None:
        vectors = unit(np.random.default_rng(1).normal(size=(100, DIMENSIONS)))
        index.add(list(range(100)), vectors)
        hits = index.search(vectors[3], 5, lambda rowid: rowid % 2 == 0)
        assert len(hits) == 5
        assert all(rowid % 2 == 0 for rowid, _ in hits)

    def test_rows_added_after_search_are_found(self, index: VectorIndex) -> None:
        vectors = unit(np.random.default_rng(2).normal(size=(40, DIMENSIONS)))
        index.add(list(range(20)), vectors[:20])
        index.search(vectors[0], 1)
        index.add(list(range(20, 40)), vectors[20:])
        assert index.search(vectors[33], 1)[0][0] == 33

    def test_empty_index_returns_nothing(self, index: VectorIndex) -> None:
        assert index.search(np.ones(DIMENSIONS, dtype=np.float32), 3) == []

    def test_vectors_of_returns_what_was_stored(self, index: VectorIndex) -> None:
        vectors = unit(np.random.default_rng(4).normal(size=(3, DIMENSIONS)))
        index.add([5, 6, 7], vectors)
        index.remove([6])
        found = index.vectors_of([7, 6, 99, 5])
        assert found.shape == (4, DIMENSIONS)
        np.testing.assert_allclose(found[0], vectors[2], atol=1e-5)
        np.testing.assert_allclose(found[3], vectors[0], atol=1e-5)
        assert not found[1].any()  # removed
        assert not found[2].any()  # never added
