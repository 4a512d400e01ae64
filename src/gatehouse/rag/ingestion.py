"""The documents of a collection: ingest, list, read, delete, prune.

Ingestion validates every document before anything is written, skips
documents whose content and chunk-shaping settings are unchanged, chunks and
embeds the rest (:mod:`gatehouse.rag.ingest`, the pure part; embeddings go
through the gateway as the caller, tagged ``rag.ingest``) and writes the
batch in one transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import closing

from gatehouse.core.errors import NotFoundError, ValidationFailedError
from gatehouse.core.principal import LOCAL, Principal
from gatehouse.rag.catalog import Catalog
from gatehouse.rag.ingest import chunk_documents, content_hash, generated_id
from gatehouse.rag.model_calls import ModelCalls
from gatehouse.rag.models import DocumentIn, DocumentInfo, IngestResult
from gatehouse.rag.store import DocumentRecord

MAX_DOCUMENT_CHARS = 2_000_000


class Ingestion:
    """Documents into and out of the collections of ``catalog``."""

    def __init__(
        self,
        catalog: Catalog,
        models: ModelCalls,
        *,
        max_document_chars: int = MAX_DOCUMENT_CHARS,
    ) -> None:
        self.catalog = catalog
        self.models = models
        self.max_document_chars = max_document_chars

    def validate(self, documents: Sequence[DocumentIn]) -> None:
        """Reject empty or over-long documents before anything is written."""
        for index, document in enumerate(documents):
            if not document.text.strip():
                raise ValidationFailedError(
                    f"documents[{index}].text is empty", param=f"documents[{index}].text"
                )
            if len(document.text) > self.max_document_chars:
                raise ValidationFailedError(
                    f"documents[{index}] has {len(document.text)} characters; the limit is "
                    f"{self.max_document_chars}",
                    param=f"documents[{index}].text",
                )

    async def add(
        self, name: str, documents: Sequence[DocumentIn], *, caller: Principal = LOCAL
    ) -> IngestResult:
        """Ingest documents: unchanged ones are skipped, changed ones replaced atomically."""
        collection = self.catalog.open(name, caller=caller)
        spec = collection.spec
        self.validate(documents)
        ids = [d.id or generated_id(d) for d in documents]
        if len(set(ids)) != len(ids):
            raise ValidationFailedError(
                "document ids in one request must be unique", param="documents"
            )
        result = IngestResult()
        pending: list[tuple[DocumentRecord, DocumentIn, bool]] = []
        with closing(collection.store()) as store:
            for doc_id, document in zip(ids, documents, strict=True):
                digest = content_hash(document, spec)
                existing = store.document(doc_id)
                if existing is not None and existing.content_hash == digest:
                    result.unchanged += 1
                    continue
                record = DocumentRecord(
                    id=doc_id,
                    title=document.title,
                    source=document.source,
                    content_hash=digest,
                    metadata=dict(document.metadata),
                    chunks=0,
                    updated_at=int(time.time()),
                )
                pending.append((record, document, existing is not None))
            if not pending:
                return result
            chunked = await chunk_documents(
                [(document, record.id) for record, document, _ in pending],
                spec,
                self.models.embedder(spec, self.models.client(caller, "rag.ingest")),
            )
            batch = []
            for (record, _, replacing), chunks in zip(pending, chunked, strict=True):
                result.chunks += len(chunks)
                if replacing:
                    result.replaced += 1
                else:
                    result.added += 1
                batch.append((record, chunks))
            store.put_documents(batch)
        if collection.loaded:
            # Searches here would catch up anyway; doing it now keeps graph
            # building (and saving) out of the next query's time.
            await asyncio.to_thread(collection.sync)
        return result

    async def index(self, name: str, *, caller: Principal = LOCAL) -> None:
        """Load ``name``'s search indexes here and bring them (and the saved graph) up to date."""
        await asyncio.to_thread(self.catalog.open(name, caller=caller).sync)

    def documents(
        self, name: str, *, limit: int = 100, after: str = "", caller: Principal = LOCAL
    ) -> list[DocumentInfo]:
        """Up to ``limit`` documents of ``name`` by id, after the id ``after``."""
        with closing(self.catalog.open(name, caller=caller).store()) as store:
            return [_info(r) for r in store.documents(limit=limit, after=after)]

    def document(
        self, name: str, document_id: str, *, caller: Principal = LOCAL
    ) -> tuple[DocumentInfo, list[dict[str, object]]]:
        """One document of ``name`` and its chunks; 404 when absent."""
        with closing(self.catalog.open(name, caller=caller).store()) as store:
            record = store.document(document_id)
            if record is None:
                raise NotFoundError(
                    f"document '{document_id}' does not exist in collection '{name}'",
                    param="document_id",
                )
            return _info(record), store.chunks_of(document_id)

    def delete(self, name: str, document_ids: Sequence[str], *, caller: Principal = LOCAL) -> int:
        """Delete documents of ``name``; the number deleted (unknown ids are skipped)."""
        with closing(self.catalog.open(name, caller=caller).store()) as store:
            return store.delete_documents(document_ids)

    def prune(self, name: str, prefix: str, keep: set[str]) -> int:
        """Delete documents whose source starts with ``prefix`` and is not in ``keep``."""
        with closing(self.catalog.open(name).store()) as store:
            gone = [
                doc for doc, source in store.document_ids_for_sources(prefix) if source not in keep
            ]
            return store.delete_documents(gone) if gone else 0


def _info(record: DocumentRecord) -> DocumentInfo:
    return DocumentInfo(
        id=record.id,
        title=record.title,
        source=record.source,
        content_hash=record.content_hash,
        metadata=record.metadata,
        chunks=record.chunks,
        updated_at=record.updated_at,
    )
