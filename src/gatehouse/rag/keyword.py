"""BM25 over an in-memory inverted index.

The index is rebuilt from the collection store (the source of truth) and kept
in memory; it never holds state that the store does not, so a crash loses
nothing. Scores are Okapi BM25 with the Lucene idf (always positive).
Removed (and replaced) rows keep their position until most positions are dead;
then the index is rebuilt from its live rows, dropping terms no live row has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gatehouse.rag.text import analyze

K1 = 1.2
B = 0.75
# Rebuild once at least this many positions are dead and they outnumber the live ones.
COMPACT_MIN_DEAD = 1024

FloatArray = np.ndarray[Any, np.dtype[np.float32]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass
class _Postings:
    positions: list[int] = field(default_factory=list)
    freqs: list[int] = field(default_factory=list)
    frozen: tuple[IntArray, FloatArray] | None = None


class BM25Index:
    """Terms of each chunk, keyed by the chunk's integer row id.

    ``language`` is passed to :func:`analyze` for queries; documents arrive
    already analysed (their terms are stored next to the chunk).
    """

    def __init__(self, *, language: str = "auto", k1: float = K1, b: float = B) -> None:
        self.language = language
        self.k1, self.b = k1, b
        self._rowids: list[int] = []
        self._position: dict[int, int] = {}
        self._lengths: list[int] = []
        self._alive: list[bool] = []
        self._postings: dict[str, _Postings] = {}
        self._terms: dict[int, Counter[str]] = {}
        self._live_count = 0
        self._total_length = 0
        self._arrays: tuple[IntArray, FloatArray, BoolArray] | None = None
        # The last weighted query's scores: a hybrid search scores the same terms
        # twice (its candidates, then every candidate's score), on each of two passes.
        self._last: tuple[tuple[tuple[str, float], ...], FloatArray] | None = None

    def __len__(self) -> int:
        return self._live_count

    @property
    def positions(self) -> int:
        """Positions held, live or removed: what the index's memory follows."""
        return len(self._rowids)

    def add(self, items: Iterable[tuple[int, Sequence[str]]]) -> None:
        """Index ``(rowid, terms)`` pairs; a rowid already present is replaced."""
        for rowid, terms in items:
            if rowid in self._position:
                self.remove([rowid])
            position = len(self._rowids)
            self._rowids.append(rowid)
            self._position[rowid] = position
            self._lengths.append(len(terms))
            self._alive.append(True)
            self._live_count += 1
            self._total_length += len(terms)
            counts = Counter(terms)
            self._terms[rowid] = counts
            for term, freq in counts.items():
                postings = self._postings.get(term)
                if postings is None:
                    postings = self._postings[term] = _Postings()
                postings.positions.append(position)
                postings.freqs.append(freq)
                postings.frozen = None
        self._arrays = None
        self._last = None

    def remove(self, rowids: Iterable[int]) -> None:
        for rowid in rowids:
            position = self._position.pop(rowid, None)
            self._terms.pop(rowid, None)
            if position is None or not self._alive[position]:
                continue
            self._alive[position] = False
            self._live_count -= 1
            self._total_length -= self._lengths[position]
        self._arrays = None
        self._last = None
        dead = len(self._rowids) - self._live_count
        if dead >= COMPACT_MIN_DEAD and dead > self._live_count:
            self._compact()

    def _compact(self) -> None:
        live = [
            (rowid, self._terms[rowid])
            for rowid, alive in zip(self._rowids, self._alive, strict=True)
            if alive
        ]
        self._rowids, self._position, self._lengths, self._alive = [], {}, [], []
        self._postings, self._terms = {}, {}
        self._live_count = self._total_length = 0
        self.add((rowid, list(counts.elements())) for rowid, counts in live)

    def search(
        self, query: str, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` best ``(rowid, score)`` pairs for ``query``; zero scores are left out."""
        return self.search_terms(analyze(query, self.language), k, allowed)

    def search_terms(
        self,
        terms: Sequence[str] | Mapping[str, float],
        k: int,
        allowed: set[int] | None = None,
    ) -> list[tuple[int, float]]:
        """Like :meth:`search` for analysed terms (a mapping gives each term a weight)."""
        if not self._live_count or not terms or k <= 0:
            return []
        rowids = self._snapshot()[0]
        scores = self._scores(terms)
        if allowed is not None:
            mask = np.zeros(len(rowids), dtype=bool)
            for rowid in allowed:
                position = self._position.get(rowid)
                if position is not None:
                    mask[position] = True
            scores = scores * mask  # a copy: the scores are kept for the next call
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        hits = hits[np.argsort(-scores[hits], kind="stable")]
        return [(int(rowids[i]), float(scores[i])) for i in hits]

    def score_rows(
        self, terms: Sequence[str] | Mapping[str, float], rowids: Sequence[int]
    ) -> list[float]:
        """BM25 scores of the given rows (0 for rows not indexed)."""
        if not self._live_count or not terms:
            return [0.0] * len(rowids)
        scores = self._scores(terms)
        positions = [self._position.get(rowid) for rowid in rowids]
        return [float(scores[p]) if p is not None else 0.0 for p in positions]

    def idf(self, term: str) -> float:
        """The term's idf as scoring uses it (that of an unseen term for a term in no live row)."""
        df = 0
        postings = self._postings.get(term)
        if postings is not None:
            positions, _ = self._frozen(postings)
            df = int(self._snapshot()[2][positions].sum())
        return float(np.log(1 + (self._live_count - df + 0.5) / (df + 0.5)))

    def terms_of(self, rowid: int) -> Counter[str]:
        """Term frequencies of one indexed row (for query expansion)."""
        return self._terms.get(rowid, Counter())

    def _scores(self, terms: Sequence[str] | Mapping[str, float]) -> FloatArray:
        """Every position's score for ``terms`` (read-only: the last one is reused)."""
        weighted = terms if isinstance(terms, Mapping) else Counter(terms)
        # In order: the sum over terms is not associative in float32.
        key = tuple(weighted.items())
        last = self._last  # read once: another reader may replace it meanwhile
        if last is not None and last[0] == key:
            return last[1]
        scores = self._score_terms(weighted)
        scores.flags.writeable = False
        self._last = (key, scores)
        return scores

    def _score_terms(self, weighted: Mapping[str, float]) -> FloatArray:
        rowids, lengths, alive = self._snapshot()
        avg = self._total_length / self._live_count
        norm = self.k1 * (1 - self.b + self.b * lengths / max(avg, 1e-9))
        scores = np.zeros(len(rowids), dtype=np.float32)
        for term, weight in weighted.items():
            postings = self._postings.get(term)
            if postings is None:
                continue
            positions, freqs = self._frozen(postings)
            live = alive[positions]
            df = int(live.sum())
            if df == 0:
                continue
            idf = np.log(1 + (self._live_count - df + 0.5) / (df + 0.5))
            tf = freqs * (self.k1 + 1) / (freqs + norm[positions])
            scores[positions] += weight * idf * tf * live
        return scores

    def _snapshot(self) -> tuple[IntArray, FloatArray, BoolArray]:
        if self._arrays is None:
            self._arrays = (
                np.asarray(self._rowids, dtype=np.int64),
                np.asarray(self._lengths, dtype=np.float32),
                np.asarray(self._alive, dtype=bool),
            )
        return self._arrays

    @staticmethod
    def _frozen(postings: _Postings) -> tuple[IntArray, FloatArray]:
        if postings.frozen is None:
            postings.frozen = (
                np.asarray(postings.positions, dtype=np.int64),
                np.asarray(postings.freqs, dtype=np.float32),
            )
        return postings.frozen
