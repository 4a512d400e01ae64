"""Turning one document into stored chunks: chunk, embed, analyse for keywords."""

from __future__ import annotations

import hashlib

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
from gatehouse.rag.tokenizer import tokenizer_for

# local/minilm reads 256 tokens including [CLS] and [SEP].
MAX_CHUNK_TOKENS = 254


async def chunk_document(
    document: DocumentIn, doc_id: str, spec: CollectionSpec, embedder: Embedder
) -> list[StoredChunk]:
    """The chunks of ``document``, embedded and analysed, ready for the store."""
    tokens = tokenizer_for(spec.embedding_model)
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
        spans = sentence_spans(text)
        vectors = await embedder.embed([text[a:b] for a, b in spans])
        pieces = semantic_chunks(text, tokens, size, spans, vectors, config.semantic_threshold)
    else:
        pieces = structure_chunks(text, tokens, size, overlap)
    texts = [text[p.start : p.end] for p in pieces]
    # The title rides along in what is embedded and keyword-indexed, so a
    # chunk deep in a document still matches questions about its subject.
    indexed = [f"{title}\n{t}" if title else t for t in texts]
    vectors = await embedder.embed(indexed)
    base = {k: v for k, v in document.metadata.items()}
    chunks = []
    for position, (piece, chunk_text, vector) in enumerate(
        zip(pieces, texts, vectors, strict=True)
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
                terms=analyze(indexed[position], spec.language),
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
