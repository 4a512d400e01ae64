"""The local/minilm provider around a fake backend: checks, batching, usage, formats."""

from __future__ import annotations

import asyncio
import base64
import struct
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import pytest

from gatehouse.core.config import LocalEmbeddingConfig
from gatehouse.core.errors import ContextLengthExceededError, UnsupportedParameterError
from gatehouse.core.types import EmbeddingRequest
from gatehouse.providers.local.embedding_backends import TokenizedText
from gatehouse.providers.local.embeddings import MiniLMEmbeddingProvider
from gatehouse.providers.local.pooling import FloatArray, l2_normalise

T = TypeVar("T")


class WordCountBackend:
    """One token per word plus [CLS]/[SEP]; the vector encodes the word count."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.threads: list[tuple[str, int]] = []  # which thread tokenised, which embedded
        self._lock = threading.Lock()

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        self.threads.append(("tokenize", threading.get_ident()))
        return [[101, *([7] * len(text.split())), 102] for text in texts]

    def embed(self, items: Sequence[TokenizedText]) -> FloatArray:
        self.threads.append(("embed", threading.get_ident()))
        with self._lock:
            self.calls.append([item.text for item in items])
        rows = np.array([[len(item.ids), 1.0, 0.0] for item in items], np.float32)
        return l2_normalise(rows)


def provider(**config: object) -> tuple[MiniLMEmbeddingProvider, WordCountBackend]:
    backend = WordCountBackend()
    settings = LocalEmbeddingConfig.model_validate(config)
    return MiniLMEmbeddingProvider(settings, backend=backend), backend


def expected(words: int) -> list[float]:
    vector = np.array([[words + 2, 1.0, 0.0]], np.float32)
    return [float(x) for x in l2_normalise(vector)[0]]


async def test_concurrent_requests_share_one_model_run_and_get_their_own_vectors() -> None:
    # The size limit (not a timer) closes the batch: three inputs in all.
    embedder, backend = provider(batch_window_ms=1000, batch_max_inputs=3)
    responses = await asyncio.wait_for(
        asyncio.gather(
            embedder.embed(EmbeddingRequest(model="local/minilm", input="one")),
            embedder.embed(EmbeddingRequest(model="local/minilm", input=["two words", "a b c"])),
        ),
        timeout=10,
    )
    assert len(backend.calls) == 1
    assert sorted(backend.calls[0]) == ["a b c", "one", "two words"]
    first, second = responses
    assert first.data[0].embedding == pytest.approx(expected(1))
    assert [d.embedding for d in second.data] == [
        pytest.approx(expected(2)),
        pytest.approx(expected(3)),
    ]
    assert [d.index for d in second.data] == [0, 1]
    assert second.usage.prompt_tokens == (2 + 2) + (3 + 2)


async def test_a_lone_call_is_tokenised_and_run_in_one_trip_to_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A search's query: nothing to coalesce with, so no second hand-over to a
    # thread (and no wait for the window, which is long here).
    trips: list[str] = []
    to_thread = asyncio.to_thread

    async def counted(call: Callable[..., T], /, *args: object) -> T:
        trips.append(getattr(call, "__name__", "call"))
        return await to_thread(call, *args)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    embedder, backend = provider(batch_window_ms=1000)
    response = await asyncio.wait_for(
        embedder.embed(EmbeddingRequest(model="local/minilm", input="two words")), timeout=30
    )
    assert response.data[0].embedding == pytest.approx(expected(2))
    assert len(trips) == 1
    (tokenised, tokeniser), (ran, runner) = backend.threads
    assert (tokenised, ran) == ("tokenize", "embed")
    assert tokeniser == runner != threading.get_ident()
    assert backend.calls == [["two words"]]


async def test_an_input_over_256_tokens_fails_its_request_only() -> None:
    embedder, backend = provider(batch_window_ms=0)
    too_long = EmbeddingRequest(model="local/minilm", input=["fine", "w " * 300])
    good = EmbeddingRequest(model="local/minilm", input="fine")
    bad_result, good_result = await asyncio.gather(
        embedder.embed(too_long), embedder.embed(good), return_exceptions=True
    )
    assert isinstance(bad_result, ContextLengthExceededError)
    assert "input[1] has 302 tokens" in str(bad_result)
    assert not isinstance(good_result, BaseException)
    assert good_result.data[0].embedding == pytest.approx(expected(1))
    assert all("w w" not in text for call in backend.calls for text in call)


async def test_base64_encoding_carries_the_same_floats() -> None:
    embedder, _ = provider()
    response = await embedder.embed(
        EmbeddingRequest(model="local/minilm", input="a b", encoding_format="base64")
    )
    raw = base64.b64decode(str(response.data[0].embedding))
    assert list(struct.unpack("<3f", raw)) == pytest.approx(expected(2))


async def test_other_dimensions_are_refused_before_any_work() -> None:
    embedder, backend = provider()
    with pytest.raises(UnsupportedParameterError):
        await embedder.embed(EmbeddingRequest(model="local/minilm", input="x", dimensions=8))
    assert backend.calls == []


def test_encode_without_batching_returns_vectors_and_token_count() -> None:
    embedder, _ = provider()
    vectors, tokens = embedder.encode(["a", "b c"])
    assert vectors.shape == (2, 3)
    assert tokens == 3 + 4
    assert embedder.backend_name == "fake"
    assert embedder.readiness().detail == "loaded (fake)"


def test_backend_and_batching_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="backend"):
        LocalEmbeddingConfig.model_validate({"backend": "tensorflow"})
    with pytest.raises(ValueError, match="batch_max_inputs"):
        LocalEmbeddingConfig.model_validate({"batch_max_inputs": 0})
