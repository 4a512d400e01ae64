"""The index contracts: what a vector backend and a keyword backend must do.

Both key rows by the integer row id of the chunk in the collection store.
Backends: :class:`~gatehouse.rag.vector.EmbeddedVectorIndex` (exact + HNSW,
in process) and :class:`~gatehouse.rag.chroma.ChromaVectorIndex` (a Chroma
server over HTTP) for vectors; :class:`~gatehouse.rag.keyword.BM25Index` for
keywords. ``tests/unit/vector_index_conformance.py`` is the conformance
suite every vector backend runs: a backend's tests subclass its
``VectorIndexConformance`` and provide an empty index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float32]]


class VectorIndex(Protocol):
    def __len__(self) -> int: ...

    def add(self, rowids: Sequence[int], vectors: FloatArray) -> None:
        """Add (or replace) normalised vectors."""

    def remove(self, rowids: Sequence[int]) -> None:
        """Forget rows; unknown ids are ignored."""

    def search(
        self,
        vector: FloatArray,
        k: int,
        allowed: Callable[[int], bool] | None = None,
        *,
        exact: bool = False,
    ) -> list[tuple[int, float]]:
        """The ``k`` most similar ``(rowid, cosine)`` pairs among allowed rows, best first."""

    def vectors_of(self, rowids: Sequence[int]) -> FloatArray:
        """The stored vectors of ``rowids`` (zeros for unknown rows)."""


class KeywordIndex(Protocol):
    def __len__(self) -> int: ...

    def add(self, items: Sequence[tuple[int, Sequence[str]]]) -> None:
        """Index ``(rowid, analysed terms)`` pairs, replacing rows already present."""

    def remove(self, rowids: Sequence[int]) -> None: ...

    def search_terms(
        self,
        terms: Sequence[str] | Mapping[str, float],
        k: int,
        allowed: set[int] | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` best ``(rowid, score)`` pairs with a positive score, best first."""

    def score_rows(
        self, terms: Sequence[str] | Mapping[str, float], rowids: Sequence[int]
    ) -> list[float]:
        """Scores of the given rows (0 for rows not indexed)."""
