"""Turning documents into stored chunks: chunk, embed, analyse for keywords."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from gatehouse.rag.chunking import (
    Piece,
    semantic_chunks,
    sentence_spans,
    structure_chunks,
    token_windows,
)
from gatehouse.rag.embedder import Embedder
from gatehouse.rag.models import CollectionSpec, DocumentIn
from gatehouse.rag.store import StoredChunk
from gatehouse.rag.text import analyze
from gatehouse.rag.tokenizer import TokenCounter, tokenizer_for

FloatArray = np.ndarray[Any, np.dtype[np.float32]]
# A document's sentence spans and their embeddings (semantic chunking).
_Sentences = tuple[list[tuple[int, int]], FloatArray]

# local/minilm reads 256 tokens including [CLS] and [SEP].
MAX_CHUNK_TOKENS = 254


@dataclass(frozen=True, slots=True)
class _Planned:
    """One document cut into pieces, before embedding."""

    document: DocumentIn
    doc_id: str
    pieces: list[Piece]
    texts: list[str]  # the chunk texts, slices of the document
    indexed: list[str]  # what is embedded and keyword-indexed: title line + chunk text


async def chunk_documents(
    documents: Sequence[tuple[DocumentIn, str]], spec: CollectionSpec, embedder: Embedder
) -> list[list[StoredChunk]]:
    """The chunks of each ``(document, id)``, embedded and analysed, ready for the store.

    All chunks of all documents go to the embedder in one call, so it can batch
    them by length (short passages are not padded to long ones) and keep the
    model busy; the keyword analysis runs in a thread meanwhile.
    """
    tokens = tokenizer_for(spec.embedding_model)
    sentences: list[_Sentences | None] = [None] * len(documents)
    if spec.chunking.strategy == "semantic":
        spans = [sentence_spans(document.text) for document, _ in documents]
        embedded = await embedder.embed(
            [
                document.text[a:b]
                for (document, _), doc_spans in zip(documents, spans, strict=True)
                for a, b in doc_spans
            ]
        )
        offsets = np.cumsum([0, *(len(doc_spans) for doc_spans in spans)])
        sentences = [
            (doc_spans, embedded[a:b])
            for doc_spans, (a, b) in zip(spans, itertools.pairwise(offsets), strict=True)
        ]
    planned = [
        _plan(document, doc_id, spec, tokens, doc_sentences)
        for (document, doc_id), doc_sentences in zip(documents, sentences, strict=True)
    ]
    indexed = [text for plan in planned for text in plan.indexed]
    terms = asyncio.create_task(
        asyncio.to_thread(lambda: [analyze(text, spec.language) for text in indexed])
    )
    try:
        vectors = await embedder.embed(indexed) if indexed else np.zeros((0, 0), np.float32)
    finally:
        analysed = await terms
    chunks: list[list[StoredChunk]] = []
    at = 0
    for plan in planned:
        count = len(plan.pieces)
        chunks.append(_stored(plan, vectors[at : at + count], analysed[at : at + count]))
        at += count
    return chunks


def _plan(
    document: DocumentIn,
    doc_id: str,
    spec: CollectionSpec,
    tokens: TokenCounter,
    sentences: _Sentences | None,
) -> _Planned:
    config = spec.chunking
    text = document.text
    # Room for the title line and the model's two special tokens.
    title = " ".join((document.title or "").split()[:24])
    size = min(config.size, MAX_CHUNK_TOKENS - len(tokens.spans(title)) - 2)
    overlap = min(config.overlap, size // 2)
    pieces: list[Piece]
    if config.strategy == "tokens":
        pieces = token_windows(text, tokens, size, overlap)
    elif config.strategy == "semantic":
        assert sentences is not None
        spans, vectors = sentences
        pieces = semantic_chunks(text, tokens, size, spans, vectors, config.semantic_threshold)
    else:
        pieces = structure_chunks(text, tokens, size, overlap)
    texts = [text[p.start : p.end] for p in pieces]
    # The title rides along in what is embedded and keyword-indexed, so a
    # chunk deep in a document still matches questions about its subject.
    indexed = [f"{title}\n{t}" if title else t for t in texts]
    return _Planned(document, doc_id, pieces, texts, indexed)


def _stored(plan: _Planned, vectors: FloatArray, terms: list[list[str]]) -> list[StoredChunk]:
    document, doc_id = plan.document, plan.doc_id
    base = {k: v for k, v in document.metadata.items()}
    chunks = []
    for position, (piece, chunk_text, vector) in enumerate(
        zip(plan.pieces, plan.texts, vectors, strict=True)
    ):
        metadata = {
            **base,
            "document_id": doc_id,
            "position": position,
            **({"title": document.title} if document.title else {}),
            **({"source": document.source} if document.source else {}),
            **({"heading": piece.heading} if piece.heading else {}),
        }
        digest = hashlib.sha256(f"{doc_id}\x00{position}\x00{chunk_text}".encode()).hexdigest()
        chunks.append(
            StoredChunk(
                chunk_id=f"{doc_id}#{position}-{digest[:8]}",
                position=position,
                text=chunk_text,
                heading=piece.heading,
                start=piece.start,
                end=piece.end,
                metadata=metadata,
                terms=terms[position],
                vector=vector,
            )
        )
    return chunks


def generated_id(document: DocumentIn) -> str:
    """A stable id for a document that came without one: a hash of its source and text."""
    basis = f"{document.source or ''}\x00{document.title or ''}\x00{document.text}"
    return "doc-" + hashlib.sha256(basis.encode()).hexdigest()[:20]


def content_hash(document: DocumentIn, spec: CollectionSpec) -> str:
    """What decides whether re-ingesting is a no-op: content plus the settings that shape chunks."""
    basis = orjson.dumps(
        {
            "text": document.text,
            "title": document.title,
            "metadata": document.metadata,
            "source": document.source,
            "chunking": spec.chunking.model_dump(),
            "model": spec.embedding_model,
            "language": spec.language,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(basis).hexdigest()
