"""The embedded vector index: exact search while small, HNSW (hnswlib) above a threshold.

Vectors are L2-normalised, so the inner product is the cosine similarity.
Exact search is one matrix-vector product; it is both faster to keep up to
date and exactly right for small collections. Past ``ann_threshold`` rows an
HNSW graph answers instead. Deleted rows are marked in the graph and skipped.
A filter narrows the candidates: when it leaves few rows they are searched
exactly; otherwise the graph is asked for more and the rest filtered out.

Given a ``graph_dir``, the graph is saved there (:mod:`gatehouse.rag.graph_file`)
after it is built or has grown by ``SAVE_GROWTH`` since the last save, and
:meth:`EmbeddedVectorIndex.load` reuses a saved graph when a process opens the
collection: rows added since the save are inserted, rows deleted since are
marked, and a graph that fails its checks is rebuilt.

Deleted (and replaced) rows keep their position until most positions are
dead: then the index is compacted to its live rows and the graph rebuilt on
its next use, so memory follows the live rows, not every row ever added.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gatehouse.core.extras import needs_extra
from gatehouse.rag import graph_file

FloatArray = np.ndarray[Any, np.dtype[np.float32]]

ANN_THRESHOLD = 20_000
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128
# Save the graph again once it holds this share more positions than the last
# save: each save rewrites the whole file, so saves get rarer as the graph
# grows, and a reopen never inserts more than this share anew.
SAVE_GROWTH = 0.1
# How many live positions a load compares with the store's vectors.
SPOT_CHECKS = 64
# A saved graph whose positions are mostly deleted rows is rebuilt rather than loaded.
MIN_LIVE_SHARE = 0.5
# Compact once at least this many positions are dead and they outnumber the
# live ones (the same share as above): each compaction is paid for by as many
# deletions as rows it keeps.
COMPACT_MIN_DEAD = 1024

log = logging.getLogger("gatehouse.rag")


def _new_graph(dimensions: int, capacity: int) -> Any:
    """An empty HNSW graph (the expensive path a saved graph spares)."""
    with needs_extra("rag", "The HNSW vector index"):
        import hnswlib

    graph = hnswlib.Index(space="ip", dim=dimensions)
    graph.init_index(max_elements=capacity, ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M)
    return graph


class EmbeddedVectorIndex:
    """In-memory vectors keyed by integer row id (the store's chunk row id)."""

    def __init__(
        self,
        dimensions: int,
        *,
        ann_threshold: int = ANN_THRESHOLD,
        graph_dir: Path | None = None,
    ) -> None:
        """``graph_dir``: where the HNSW graph is saved and loaded from (none: memory only)."""
        self.dimensions = dimensions
        self.ann_threshold = ann_threshold
        self.graph_dir = graph_dir
        self._params = graph_file.GraphParams(dimensions, HNSW_M, HNSW_EF_CONSTRUCTION)
        self._saved_count = 0  # graph positions covered by the last save (or load)
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

    @property
    def positions(self) -> int:
        """Positions held, live or deleted: what the index's memory follows."""
        return len(self._rowids)

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
        dead = len(self._rowids) - self._live
        if dead >= COMPACT_MIN_DEAD and self._live < MIN_LIVE_SHARE * len(self._rowids):
            self._compact()

    def _compact(self) -> None:
        """Keep only the live rows; the graph is rebuilt when next needed (and saved anew)."""
        self._consolidate()
        keep = np.flatnonzero(self._alive_array)
        self._matrix = np.ascontiguousarray(self._matrix[keep])
        self._rowids = [self._rowids[int(i)] for i in keep]
        self._position = {rowid: index for index, rowid in enumerate(self._rowids)}
        self._alive = [True] * len(keep)
        self._hnsw = None
        self._hnsw_count = self._saved_count = 0
        self._dirty()

    def vectors_of(self, rowids: Sequence[int]) -> FloatArray:
        """The stored vectors of ``rowids`` (zeros for unknown rows)."""
        self._consolidate()
        get = self._position.get
        positions = np.fromiter((get(r, -1) for r in rowids), dtype=np.int64, count=len(rowids))
        known = positions >= 0
        if known.all():
            return self._matrix[positions]
        out = np.zeros((len(rowids), self.dimensions), dtype=np.float32)
        out[known] = self._matrix[positions[known]]
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
        try:
            labels, distances = graph.knn_query(query, k=min(want, in_graph))
        except RuntimeError:
            # hnswlib gives up ("Cannot return the results in a contiguous 2D
            # array") when its walk reaches fewer than k live nodes, as in a
            # graph thinned by deletions before compaction: scan exactly instead.
            return self._exact(query, k, self._alive_array if mask is None else mask)
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
        total = len(self._rowids)
        if self._hnsw is None:
            self._hnsw = _new_graph(self.dimensions, max(total, 1024))
            self._hnsw_count = 0
            self._saved_count = 0
        if self._hnsw_count < total:
            if total > self._hnsw.get_max_elements():
                self._hnsw.resize_index(max(total, 2 * self._hnsw.get_max_elements()))
            positions = np.arange(self._hnsw_count, total)
            self._hnsw.add_items(self._matrix[self._hnsw_count : total], positions)
            for position in positions[~self._alive_array[self._hnsw_count : total]]:
                self._hnsw.mark_deleted(int(position))
            self._hnsw_count = total
            self._save_if_due()
        return self._hnsw

    def _save_if_due(self) -> None:
        if self.graph_dir is None or self._hnsw is None:
            return
        grown = self._hnsw_count - self._saved_count
        if self._saved_count and grown < max(1, SAVE_GROWTH * self._saved_count):
            return
        count = self._hnsw_count
        try:
            graph_file.save(
                self.graph_dir,
                self._hnsw,
                self._rowid_array[:count],
                self._alive_array[:count],
                self._params,
            )
        except OSError as exc:
            # The graph in memory is still right; the next open rebuilds what is unsaved.
            log.warning("could not save the HNSW graph to %s: %s", self.graph_dir, exc)
            return
        self._saved_count = count

    def load(self, rowids: Sequence[int], vectors: FloatArray) -> bool:
        """Fill this empty index with the store's rows, reusing the saved graph if it is sound.

        Returns whether a saved graph was used. Rows the save does not cover are
        added (and inserted into the graph on its next use); rows it covers that
        are gone from the store are marked deleted. A save that fails its checks
        (see :mod:`gatehouse.rag.graph_file`) or whose vectors differ from the
        store's is logged and ignored: the graph is then built anew.
        """
        if self._rowids:
            raise RuntimeError("load() fills an empty index")
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dimensions)
        if len(rowids) != len(vectors):
            raise ValueError("one vector per row id")
        saved = None
        if self.graph_dir is not None and len(rowids) >= self.ann_threshold:
            try:
                saved = graph_file.load(self.graph_dir, self._params)
            except graph_file.GraphFileError as exc:
                log.warning("rebuilding the HNSW graph in %s: %s", self.graph_dir, exc)
        if saved is None or not self._adopt(saved, rowids, vectors):
            self.add(rowids, vectors)
            return False
        return True

    def _adopt(
        self, saved: graph_file.SavedGraph, rowids: Sequence[int], vectors: FloatArray
    ) -> bool:
        where = {int(rowid): index for index, rowid in enumerate(rowids)}
        count = len(saved.rowids)
        matrix = np.zeros((count, self.dimensions), dtype=np.float32)
        alive = np.zeros(count, dtype=bool)
        placed = np.zeros(len(rowids), dtype=bool)
        for position in np.flatnonzero(saved.alive):
            index = where.get(int(saved.rowids[position]))
            if index is not None and not placed[index]:
                matrix[position] = vectors[index]
                alive[position] = True
                placed[index] = True
        live = np.flatnonzero(alive)
        if len(live) < MIN_LIVE_SHARE * count:
            # Mostly deleted since the save: a fresh graph is smaller and faster.
            log.warning(
                "rebuilding the HNSW graph in %s: only %d of its %d positions are still live",
                self.graph_dir,
                len(live),
                count,
            )
            return False
        sample = live[:: max(1, len(live) // SPOT_CHECKS)][:SPOT_CHECKS]
        if len(sample) and not np.allclose(
            saved.graph.get_items(sample), matrix[sample], atol=1e-5
        ):
            log.warning("rebuilding the HNSW graph in %s: its vectors differ", self.graph_dir)
            return False
        for position in np.flatnonzero(saved.alive & ~alive):
            saved.graph.mark_deleted(int(position))
        self._rowids = [int(rowid) for rowid in saved.rowids]
        self._alive = alive.tolist()
        self._position = {self._rowids[p]: int(p) for p in live}
        self._matrix = matrix
        self._blocks = []
        self._live = len(live)
        self._hnsw = saved.graph
        self._hnsw_count = self._saved_count = count
        self._dirty()
        rest = np.flatnonzero(~placed)
        if len(rest):
            self.add([int(rowids[int(i)]) for i in rest], vectors[rest])
        return True

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
