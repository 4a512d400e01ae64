"""Ingestion in batches: one embedding call per batch, shortest texts first, same results."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest
import snowballstemmer

from gatehouse.core.errors import UpstreamError
from gatehouse.core.types import EmbeddingRequest, EmbeddingResponse
from gatehouse.gateway import Gateway, ModelRegistry
from gatehouse.rag import ChunkingConfig, CollectionSpec, DocumentIn, text
from gatehouse.rag.embedder import GatewayEmbedder
from gatehouse.rag.ingest import chunk_documents

from .fakes import EchoChat
from .rag_fakes import BagOfWords, bow_vector


class Recording(BagOfWords):
    """Records each request's inputs and how many requests were in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[list[str]] = []
        self.in_flight = 0
        self.peak = 0

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        self.requests.append(request.texts())
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.001)
            return await super().embed(request)
        finally:
            self.in_flight -= 1


def gateway(provider: BagOfWords) -> Gateway:
    return Gateway(ModelRegistry([provider, EchoChat()], {}), started_at=0)


async def test_vectors_come_back_in_input_order_from_length_sorted_batches() -> None:
    provider = Recording()
    texts = [("word " * (1 + (i * 37) % 50)) + f"item{i}" for i in range(150)]
    embedder = GatewayEmbedder(gateway(provider), "test/bow", batch_size=16, concurrency=3)
    vectors = await embedder.embed(texts)
    assert np.allclose(vectors, np.stack([bow_vector(t) for t in texts]), atol=1e-6)
    assert [len(r) for r in provider.requests] == [16] * 9 + [6]
    sent = [t for request in provider.requests for t in request]
    assert sorted(sent, key=len) == sorted(texts, key=len)
    # Each batch holds texts of neighbouring lengths: no batch spans the whole range.
    assert all(max(map(len, r)) - min(map(len, r)) < 60 for r in provider.requests)
    assert provider.peak == 3


async def test_an_empty_list_embeds_to_no_rows() -> None:
    vectors = await GatewayEmbedder(gateway(Recording()), "test/bow").embed([])
    assert vectors.shape[0] == 0


async def test_a_short_reply_is_an_upstream_error(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = Recording()
    real = provider.embed

    async def drops_one(request: EmbeddingRequest) -> EmbeddingResponse:
        response = await real(request)
        return response.model_copy(update={"data": response.data[:-1]})

    monkeypatch.setattr(provider, "embed", drops_one)
    with pytest.raises(UpstreamError, match="returned 3 embeddings for 4 inputs"):
        await GatewayEmbedder(gateway(provider), "test/bow").embed(["a", "b", "c", "d"])


@pytest.mark.parametrize("strategy", ["structure", "tokens", "semantic"])
async def test_a_batch_chunks_exactly_as_documents_one_by_one(strategy: str) -> None:
    spec = CollectionSpec(
        name="kb",
        embedding_model="test/bow",
        chunking=ChunkingConfig.model_validate({"strategy": strategy, "size": 24, "overlap": 4}),
    )
    documents = [
        (
            DocumentIn(
                text=" ".join(f"Sentence {j} about topic {i % 4}." for j in range(3 + i * 3)),
                title=f"Doc {i}" if i % 2 else None,
                metadata={"n": i},
            ),
            f"d{i}",
        )
        for i in range(8)
    ]
    provider = Recording()
    embedder = GatewayEmbedder(gateway(provider), "test/bow")
    together = await chunk_documents(documents, spec, embedder)
    calls = len(provider.requests)
    alone = [(await chunk_documents([item], spec, embedder))[0] for item in documents]
    chunks = sum(len(c) for c in together)
    sentences = sum(3 + i * 3 for i in range(8)) if strategy == "semantic" else 0
    assert calls == -(-sentences // 64) + -(-chunks // 64)  # full batches of 64, no more
    for left, right in zip(together, alone, strict=True):
        assert [c.chunk_id for c in left] == [c.chunk_id for c in right]
        assert [c.terms for c in left] == [c.terms for c in right]
        assert np.allclose(np.stack([c.vector for c in left]), np.stack([c.vector for c in right]))


def test_cached_stems_match_the_stemmer_across_threads() -> None:
    words = [
        f"{stem}{end}"
        for stem in ("connect", "run", "happi", "nation")
        for end in ("", "s", "ing", "ed", "ness", "al")
    ]
    expected = snowballstemmer.stemmer("english").stemWords(words)
    results: list[Any] = []

    def work() -> None:
        for _ in range(50):
            results.append(text.analyze(" ".join(words), "english"))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stopped = set(text._stopwords("english"))
    kept = [s for w, s in zip(words, expected, strict=True) if w not in stopped]
    assert len(results) == 200
    assert all(result == kept for result in results)


def test_the_cli_batches_by_documents_and_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    from gatehouse.cli import rag as cli

    monkeypatch.setattr(cli, "BATCH_DOCUMENTS", 3)
    monkeypatch.setattr(cli, "BATCH_CHARS", 10)
    documents = [DocumentIn(text="x" * n) for n in (2, 2, 2, 2, 9, 12, 1)]
    sizes = [[len(d.text) for d in batch] for batch in cli.batches(documents)]
    assert sizes == [[2, 2, 2], [2], [9], [12], [1]]
