"""The embedded vector index: exact search while small, HNSW (hnswlib) above a threshold.

Vectors are L2-normalised, so the inner product is the cosine similarity.
Exact search is one matrix-vector product; it is both faster to keep up to
date and exactly right for small collections. Past ``ann_threshold`` rows an
HNSW graph answers instead. Deleted rows are marked in the graph and skipped.
A filter narrows the candidates: when it leaves few rows they are searched
exactly; otherwise the graph is asked for more and the rest filtered out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float32]]

ANN_THRESHOLD = 20_000
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128


class EmbeddedVectorIndex:
    """In-memory vectors keyed by integer row id (the store's chunk row id)."""

    def __init__(self, dimensions: int, *, ann_threshold: int = ANN_THRESHOLD) -> None:
        self.dimensions = dimensions
        self.ann_threshold = ann_threshold
        self._rowids: list[int] = []
        self._position: dict[int, int] = {}
        self._alive: list[bool] = []
        self._blocks: list[FloatArray] = []
        self._matrix: FloatArray = np.zeros((0, dimensions), dtype=np.float32)
        self._rowid_array: np.ndarray[Any, np.dtype[np.int64]] = np.zeros(0, dtype=np.int64)
        self._alive_array: np.ndarray[Any, np.dtype[np.bool_]] = np.zeros(0, dtype=bool)
        self._live = 0
        self._hnsw: Any = None
        self._hnsw_count = 0  # positions [0, _hnsw_count) are in the graph

    def __len__(self) -> int:
        return self._live

    def add(self, rowids: Sequence[int], vectors: FloatArray) -> None:
        """Add vectors (shape ``(n, dimensions)``); a row id already present is replaced."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dimensions)
        if len(rowids) != len(vectors):
            raise ValueError("one vector per row id")
        self.remove([r for r in rowids if r in self._position])
        start = len(self._rowids)
        for offset, rowid in enumerate(rowids):
            self._position[rowid] = start + offset
        self._rowids.extend(rowids)
        self._alive.extend([True] * len(rowids))
        self._blocks.append(vectors)
        self._live += len(rowids)
        self._dirty()

    def remove(self, rowids: Sequence[int]) -> None:
        for rowid in rowids:
            position = self._position.pop(rowid, None)
            if position is None:
                continue
            self._alive[position] = False
            self._live -= 1
            if self._hnsw is not None and position < self._hnsw_count:
                self._hnsw.mark_deleted(position)
        self._dirty()

    def vectors_of(self, rowids: Sequence[int]) -> FloatArray:
        """The stored vectors of ``rowids`` (zeros for unknown rows)."""
        self._consolidate()
        out = np.zeros((len(rowids), self.dimensions), dtype=np.float32)
        for index, rowid in enumerate(rowids):
            position = self._position.get(rowid)
            if position is not None:
                out[index] = self._matrix[position]
        return out

    def search(
        self,
        vector: FloatArray,
        k: int,
        allowed: Callable[[int], bool] | None = None,
        *,
        exact: bool = False,
    ) -> list[tuple[int, float]]:
        """The ``k`` nearest ``(rowid, similarity)`` pairs, best first.

        ``allowed`` is a predicate over row ids (from a metadata filter).
        ``exact=True`` forces brute force (the recall reference for the ANN).
        """
        if not self._live or k <= 0:
            return []
        self._consolidate()
        query = np.asarray(vector, dtype=np.float32).reshape(self.dimensions)
        mask = self._alive_array
        if allowed is not None:
            mask = mask & np.fromiter(
                (allowed(int(r)) for r in self._rowid_array), dtype=bool, count=len(mask)
            )
            if int(mask.sum()) <= max(4 * self.ann_threshold // 10, 10 * k):
                return self._exact(query, k, mask)
        if exact or self._live < self.ann_threshold:
            return self._exact(query, k, mask)
        return self._approximate(query, k, mask if allowed is not None else None)

    def _exact(
        self, query: FloatArray, k: int, mask: np.ndarray[Any, Any]
    ) -> list[tuple[int, float]]:
        if mask.all():
            candidates = np.arange(len(mask))
            scores = self._matrix @ query
        else:
            candidates = np.flatnonzero(mask)
            scores = self._matrix[candidates] @ query
        if not len(candidates):
            return []
        top = min(k, len(candidates))
        best = np.argpartition(-scores, top - 1)[:top]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(int(self._rowid_array[candidates[i]]), float(scores[i])) for i in best]

    def _approximate(
        self, query: FloatArray, k: int, mask: np.ndarray[Any, Any] | None
    ) -> list[tuple[int, float]]:
        graph = self._graph()
        want = k if mask is None else min(self._live, k * 4)
        graph.set_ef(max(HNSW_EF_SEARCH, want))
        in_graph = int(self._alive_array[: self._hnsw_count].sum())
        if in_graph == 0:
            return self._exact(query, k, self._alive_array if mask is None else mask)
        labels, distances = graph.knn_query(query, k=min(want, in_graph))
        hits = []
        for label, distance in zip(labels[0], distances[0], strict=True):
            position = int(label)
            if mask is not None and not mask[position]:
                continue
            hits.append((int(self._rowid_array[position]), 1.0 - float(distance)))
            if len(hits) == k:
                break
        # Rows added since the graph was last extended are few: search them exactly.
        if self._hnsw_count < len(self._rowids):
            tail = np.zeros(len(self._rowids), dtype=bool)
            tail[self._hnsw_count :] = True
            live = tail & self._alive_array & (mask if mask is not None else True)
            hits.extend(self._exact(query, k, live))
            hits.sort(key=lambda hit: hit[1], reverse=True)
        return hits[:k]

    def _graph(self) -> Any:
        import hnswlib

        total = len(self._rowids)
        if self._hnsw is None:
            self._hnsw = hnswlib.Index(space="ip", dim=self.dimensions)
            self._hnsw.init_index(
                max_elements=max(total, 1024), ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M
            )
            self._hnsw_count = 0
        if self._hnsw_count < total:
            if total > self._hnsw.get_max_elements():
                self._hnsw.resize_index(max(total, 2 * self._hnsw.get_max_elements()))
            positions = np.arange(self._hnsw_count, total)
            self._hnsw.add_items(self._matrix[self._hnsw_count : total], positions)
            for position in positions[~self._alive_array[self._hnsw_count : total]]:
                self._hnsw.mark_deleted(int(position))
            self._hnsw_count = total
        return self._hnsw

    def build(self) -> None:
        """Bring the ANN graph up to date now (otherwise the first query pays for it)."""
        self._consolidate()
        if self._live >= self.ann_threshold:
            self._graph()

    def _dirty(self) -> None:
        self._alive_array = np.zeros(0, dtype=bool)

    def _consolidate(self) -> None:
        if self._blocks:
            self._matrix = np.concatenate([self._matrix, *self._blocks])
            self._blocks = []
        if len(self._alive_array) != len(self._rowids):
            self._rowid_array = np.asarray(self._rowids, dtype=np.int64)
            self._alive_array = np.asarray(self._alive, dtype=bool)
