"""The vector-index conformance suite on the embedded index, and its HNSW recall.

The embedded index runs the suite twice, in exact mode and with the HNSW graph
forced on (threshold 0), so both search paths keep the same contract.
"""

from __future__ import annotations

import numpy as np
import pytest

from gatehouse.rag.vector import EmbeddedVectorIndex

from .vector_index_conformance import VectorIndexConformance, unit


class TestEmbeddedExact(VectorIndexConformance):
    @pytest.fixture
    def index(self) -> EmbeddedVectorIndex:
        return EmbeddedVectorIndex(8, ann_threshold=10**9)


class TestEmbeddedHNSW(VectorIndexConformance):
    @pytest.fixture
    def index(self) -> EmbeddedVectorIndex:
        return EmbeddedVectorIndex(8, ann_threshold=0)


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
