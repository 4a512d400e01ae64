"""The collection store: one SQLite database per collection, the source of truth.

Documents, chunks (text, metadata, analysed keyword terms, embedding) live in
``chunks.db`` in WAL mode: many readers, one writer, and every change is one
transaction, so a crash leaves either the old or the new version of a
document, never half of each. The in-memory search indexes are rebuilt from
here and follow it through ``generation`` (bumped by every write) and the
``deletions`` log (which rows went away, in order), so a reader in another
process catches up incrementally.

Writers also take an exclusive file lock for the duration of a write, so two
ingestion processes on one collection queue instead of interleaving.
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    title TEXT,
    source TEXT,
    content_hash TEXT NOT NULL,
    metadata TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_source ON documents(source);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    chunk_id TEXT NOT NULL UNIQUE,
    document_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    heading TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    terms TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id);
CREATE TABLE IF NOT EXISTS deletions (seq INTEGER PRIMARY KEY AUTOINCREMENT, row INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS fields (name TEXT PRIMARY KEY);
"""


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk ready to be written: everything but its row id."""

    chunk_id: str
    position: int
    text: str
    heading: str
    start: int
    end: int
    metadata: dict[str, Any]
    terms: list[str]
    vector: np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True, slots=True)
class Row:
    """A chunk as the search indexes load it."""

    rowid: int
    terms: list[str]
    vector: np.ndarray[Any, np.dtype[np.float32]]
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    id: str
    title: str | None
    source: str | None
    content_hash: str
    metadata: dict[str, Any]
    chunks: int
    updated_at: int


class Store:
    """Read and write one collection's database. Cheap to open; not thread-shared
    unless opened ``shared``, and then used by one thread at a time (the caller's lock)."""

    def __init__(self, directory: Path, *, shared: bool = False) -> None:
        self.directory = directory
        self._db = sqlite3.connect(
            directory / "chunks.db", timeout=30, isolation_level=None, check_same_thread=not shared
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- reading --

    def generation(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def document(self, document_id: str) -> DocumentRecord | None:
        row = self._db.execute(
            "SELECT id, title, source, content_hash, metadata, chunks, updated_at "
            "FROM documents WHERE id=?",
            (document_id,),
        ).fetchone()
        return _document(row) if row else None

    def documents(self, *, limit: int = 100, after: str = "") -> list[DocumentRecord]:
        rows = self._db.execute(
            "SELECT id, title, source, content_hash, metadata, chunks, updated_at "
            "FROM documents WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [_document(row) for row in rows]

    def document_ids_for_sources(self, prefix: str) -> list[tuple[str, str]]:
        """``(document id, source)`` of documents whose source starts with ``prefix``."""
        rows = self._db.execute(
            "SELECT id, source FROM documents WHERE source >= ? AND source < ?",
            (prefix, prefix + "\U0010ffff"),
        ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def counts(self) -> tuple[int, int]:
        docs = self._db.execute("SELECT count(*) FROM documents").fetchone()[0]
        chunks = self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return int(docs), int(chunks)

    def dimensions(self) -> int | None:
        """Length of the stored vectors (``None`` while the collection is empty)."""
        row = self._db.execute("SELECT length(vector) FROM chunks LIMIT 1").fetchone()
        return int(row[0]) // 4 if row else None

    def fields(self) -> set[str]:
        return {str(r[0]) for r in self._db.execute("SELECT name FROM fields")}

    def chunks_of(self, document_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT chunk_id, position, text, heading, start, end, metadata FROM chunks "
            "WHERE document_id=? ORDER BY position",
            (document_id,),
        ).fetchall()
        return [
            {
                "chunk_id": r[0],
                "document_id": document_id,
                "position": r[1],
                "text": r[2],
                "heading": r[3],
                "start": r[4],
                "end": r[5],
                "metadata": orjson.loads(r[6]),
            }
            for r in rows
        ]

    def chunks_by_rowid(self, rowids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Text and metadata of the given rows (those that still exist)."""
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(rowids), 500):
            part = list(rowids[start : start + 500])
            marks = ",".join("?" * len(part))
            for r in self._db.execute(
                f"SELECT rowid, chunk_id, document_id, text, metadata, vector FROM chunks "
                f"WHERE rowid IN ({marks})",
                part,
            ):
                found[int(r[0])] = {
                    "chunk_id": r[1],
                    "document_id": r[2],
                    "text": r[3],
                    "metadata": orjson.loads(r[4]),
                    "vector": np.frombuffer(r[5], dtype=np.float32),
                }
        return found

    def rows_after(self, rowid: int) -> Iterator[Row]:
        """Chunks added after ``rowid``, in row order (what an index has not seen yet)."""
        cursor = self._db.execute(
            "SELECT rowid, terms, vector, metadata FROM chunks WHERE rowid > ? ORDER BY rowid",
            (rowid,),
        )
        for r in cursor:
            yield Row(
                int(r[0]),
                r[1].split(" ") if r[1] else [],
                np.frombuffer(r[2], dtype=np.float32),
                orjson.loads(r[3]),
            )

    def deletions_after(self, seq: int) -> tuple[list[int], int]:
        """Rows deleted after deletion number ``seq``, and the latest deletion number."""
        rows = self._db.execute(
            "SELECT seq, row FROM deletions WHERE seq > ? ORDER BY seq", (seq,)
        ).fetchall()
        return [int(r[1]) for r in rows], (int(rows[-1][0]) if rows else seq)

    # -- writing: each public method is one transaction --

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with (self.directory / "write.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute(
                    "INSERT INTO meta(key, value) VALUES('generation', '1') ON CONFLICT(key) "
                    "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def put_documents(
        self, documents: Sequence[tuple[DocumentRecord, Sequence[StoredChunk]]]
    ) -> None:
        """Insert or replace documents and all their chunks in one transaction."""
        with self._writing() as db:
            for record, chunks in documents:
                self._put(db, record, chunks)

    def _put(
        self, db: sqlite3.Connection, record: DocumentRecord, chunks: Sequence[StoredChunk]
    ) -> None:
        self._delete_chunks(db, record.id)
        db.execute(
            "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.title,
                record.source,
                record.content_hash,
                orjson.dumps(record.metadata).decode(),
                len(chunks),
                record.updated_at,
            ),
        )
        db.executemany(
            "INSERT INTO chunks(chunk_id, document_id, position, text, heading, start, end, "
            "metadata, terms, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    c.chunk_id,
                    record.id,
                    c.position,
                    c.text,
                    c.heading,
                    c.start,
                    c.end,
                    orjson.dumps(c.metadata).decode(),
                    " ".join(c.terms),
                    np.asarray(c.vector, dtype=np.float32).tobytes(),
                )
                for c in chunks
            ],
        )
        db.executemany(
            "INSERT OR IGNORE INTO fields(name) VALUES (?)",
            [(name,) for c in chunks for name in c.metadata],
        )

    def delete_documents(self, document_ids: Sequence[str]) -> int:
        """Delete documents and their chunks atomically; returns how many existed."""
        with self._writing() as db:
            existed = 0
            for document_id in document_ids:
                self._delete_chunks(db, document_id)
                existed += db.execute("DELETE FROM documents WHERE id=?", (document_id,)).rowcount
            return existed

    @staticmethod
    def _delete_chunks(db: sqlite3.Connection, document_id: str) -> None:
        db.execute(
            "INSERT INTO deletions(row) SELECT rowid FROM chunks WHERE document_id=?",
            (document_id,),
        )
        db.execute("DELETE FROM chunks WHERE document_id=?", (document_id,))


def _document(row: tuple[Any, ...]) -> DocumentRecord:
    return DocumentRecord(
        id=row[0],
        title=row[1],
        source=row[2],
        content_hash=row[3],
        metadata=orjson.loads(row[4]),
        chunks=int(row[5]),
        updated_at=int(row[6]),
    )
