"""One open collection: its store plus the in-memory search indexes that follow it.

The embedded vector index keeps its HNSW graph under ``<collection>/hnsw/``,
so a process opening a large collection loads the graph instead of building it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gatehouse.rag import blas, filters
from gatehouse.rag.access import Owner
from gatehouse.rag.index import VectorIndex
from gatehouse.rag.keyword import BM25Index
from gatehouse.rag.models import CollectionSpec, SearchHit
from gatehouse.rag.retrieval import Mode, Query, mmr, retrieve
from gatehouse.rag.store import Store
from gatehouse.rag.vector import ANN_THRESHOLD, EmbeddedVectorIndex

GRAPH_DIR = "hnsw"
BUILTIN_FIELDS = frozenset({"document_id", "title", "source", "heading", "position"})


class Collection:
    """Searchable view of one collection. Thread-safe; refreshes from the store on use."""

    def __init__(
        self,
        directory: Path,
        spec: CollectionSpec,
        *,
        ann_threshold: int = ANN_THRESHOLD,
        vector_backend: Callable[[int], VectorIndex] | None = None,
        owner: Owner | None = None,
    ) -> None:
        """``vector_backend`` builds the vector index for a dimension (default: embedded);
        ``owner``: who may see it besides administrators (see :mod:`gatehouse.rag.access`)."""
        self.directory = directory
        self.spec = spec
        self.owner = owner
        self._ann_threshold = ann_threshold
        self._lock = threading.Lock()
        self._generation = -1
        self._seen_rowid = 0
        self._seen_deletion = 0
        self._vector_backend = vector_backend
        self._vectors: VectorIndex | None = None
        self._keywords = BM25Index(language=spec.language, k1=0.9, b=0.4)
        self._metadata: dict[int, dict[str, Any]] = {}
        # Whole-document keyword index (all chunks' terms), for document-level evidence.
        self._documents = BM25Index(language=spec.language, k1=0.9, b=0.4)
        self._doc_key: dict[str, int] = {}
        self._doc_rows: dict[int, set[int]] = {}
        self._row_doc: dict[int, int] = {}
        # Searches read through one connection, under ``_lock``: opening one per
        # search (connect, pragmas, schema check) cost more than the search itself.
        self._reader: Store | None = None

    def store(self) -> Store:
        """A new connection to the collection's database (callers close it)."""
        return Store(self.directory)

    def close(self) -> None:
        """Close the connection that searches read through (reopened if searched again)."""
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def _read_store(self) -> Store:
        """The searches' connection; call with ``_lock`` held."""
        if self._reader is None:
            self._reader = Store(self.directory, shared=True)
        return self._reader

    def refresh(self, store: Store) -> None:
        """Apply what changed in the store since the last refresh (new rows, deletions)."""
        generation = store.generation()
        if generation == self._generation:
            return
        # The vector index first, the cursors after: a vector index that cannot be
        # reached (a Chroma server down) raises before anything moves, so the next
        # refresh applies the same rows again instead of skipping them for good.
        deleted, seen_deletion = store.deletions_after(self._seen_deletion)
        if deleted and self._vectors is not None:
            self._vectors.remove(deleted)
        self._seen_deletion = seen_deletion
        affected: set[int] = set()
        for rowid in deleted:
            doc = self._row_doc.pop(rowid, None)
            if doc is not None:
                self._doc_rows[doc].discard(rowid)
                affected.add(doc)
        if deleted:
            self._keywords.remove(deleted)
            for rowid in deleted:
                self._metadata.pop(rowid, None)
        new_rows = list(store.rows_after(self._seen_rowid))
        if new_rows:
            rowids = [row.rowid for row in new_rows]
            matrix = np.vstack([row.vector for row in new_rows])
            if self._vectors is None:
                dimensions = matrix.shape[1]
                if self._vector_backend is not None:
                    backend = self._vector_backend(dimensions)
                    backend.add(rowids, matrix)
                    self._vectors = backend
                else:
                    embedded = EmbeddedVectorIndex(
                        dimensions,
                        ann_threshold=self._ann_threshold,
                        graph_dir=self.directory / GRAPH_DIR,
                    )
                    embedded.load(rowids, matrix)
                    self._vectors = embedded
            else:
                self._vectors.add(rowids, matrix)
            for row in new_rows:
                self._metadata[row.rowid] = row.metadata
                key = str(row.metadata.get("document_id", row.rowid))
                doc = self._doc_key.setdefault(key, len(self._doc_key))
                self._doc_rows.setdefault(doc, set()).add(row.rowid)
                self._row_doc[row.rowid] = doc
                affected.add(doc)
            self._seen_rowid = new_rows[-1].rowid
            self._keywords.add([(row.rowid, row.terms) for row in new_rows])
        for doc in affected:
            rows = sorted(self._doc_rows.get(doc, ()))
            if rows:
                terms: list[str] = []
                for rowid in rows:
                    terms.extend(self._keywords.terms_of(rowid).elements())
                self._documents.add([(doc, terms)])
            else:
                self._documents.remove([doc])
        self._generation = generation

    @property
    def loaded(self) -> bool:
        """Whether this process holds the collection's indexes in memory yet."""
        return self._generation != -1

    def sync(self) -> None:
        """Bring the in-memory indexes up to the store now, extending the HNSW graph.

        Called after ingestion, so the graph work (and its save, when due) is
        done then rather than by the next search.
        """
        with self._lock:
            self.refresh(self._read_store())
            if isinstance(self._vectors, EmbeddedVectorIndex):
                self._vectors.build()

    def known_fields(self, store: Store) -> set[str]:
        return set(self.spec.metadata_schema) | store.fields() | BUILTIN_FIELDS

    def search(
        self,
        query: Query,
        *,
        top_k: int,
        mode: Mode,
        where: dict[str, Any] | None = None,
        diversity: float | None = None,
    ) -> list[SearchHit]:
        """Best chunks for ``query``; ``diversity`` (0-1) turns on MMR with that weight."""
        with self._lock:
            store = self._read_store()
            self.refresh(store)
            allowed: set[int] | None = None
            if where:
                predicate = filters.compile_filter(where, self.known_fields(store))
                allowed = {r for r, meta in self._metadata.items() if predicate(meta)}
            if self._vectors is None:
                return []
            pool = top_k * 4 if diversity else top_k
            with blas.one_thread:
                hits = retrieve(
                    query,
                    self._vectors,
                    self._keywords,
                    pool,
                    mode,
                    allowed,
                    documents=(self._documents, self._row_doc),
                )
            rows = store.chunks_by_rowid([rowid for rowid, _ in hits])
            hits = [(r, s) for r, s in hits if r in rows]
            if diversity:
                matrix = np.vstack([rows[r]["vector"] for r, _ in hits]) if hits else None
                if matrix is not None:
                    with blas.one_thread:
                        hits = mmr(hits, matrix, top_k, lambda_=1.0 - diversity)
        return [
            SearchHit(
                document_id=rows[r]["document_id"],
                chunk_id=rows[r]["chunk_id"],
                text=rows[r]["text"],
                score=score,
                metadata=rows[r]["metadata"],
            )
            for r, score in hits[:top_k]
        ]
