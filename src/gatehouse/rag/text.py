"""Text analysis for keyword search: normalise, tokenise, drop stopwords, stem.

The analyzer is language-aware per text: the script of the text picks the
language when the collection says ``auto`` (Arabic script -> the Arabic
Snowball stemmer and Arabic normalisation; anything else -> the collection's
fallback language, English by default). Queries and passages go through the
same function, so their terms meet.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from gatehouse.core.extras import needs_extra
from gatehouse.rag.stopwords import BY_LANGUAGE

_WORD = re.compile(r"\w+", re.UNICODE)
_ARABIC_CHAR = re.compile(r"[\u0600-\u06ff]")
# Harakat, tatweel and Quranic marks: written inconsistently, never meaningful for search.
_ARABIC_MARKS = re.compile(r"[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_ARABIC_FOLD = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه"})


def detect_language(text: str, fallback: str = "english") -> str:
    """``arabic`` when a good share of the letters are Arabic script, else ``fallback``."""
    letters = sum(1 for ch in text[:2000] if ch.isalpha())
    if letters and len(_ARABIC_CHAR.findall(text[:2000])) / letters > 0.3:
        return "arabic"
    return fallback


# Stems of words already seen, per language. Word frequencies are Zipfian, so
# nearly every word of a new passage is found here and the (pure Python)
# Snowball stemmer runs only for new words: ingestion analyses several times
# faster. Bounded: past the limit new words are stemmed but not remembered.
STEM_CACHE_WORDS = 200_000
_stem_cache: dict[str, dict[str, str]] = {}
# Snowball stemmer objects keep state per call, so each thread gets its own.
_local = threading.local()


def _snowball() -> Any:
    # Imported on first use: the gateway alone (no 'rag' extra) imports this module.
    with needs_extra("rag", "Keyword search"):
        import snowballstemmer
    return snowballstemmer


@lru_cache(maxsize=1)
def languages() -> tuple[str, ...]:
    """The values a collection's ``language`` takes: ``auto`` and the Snowball stemmers."""
    return ("auto", *sorted(_snowball().algorithms()))


def _stemmer(language: str) -> Callable[[str], str]:
    stemmers: dict[str, Callable[[str], str]] = _local.__dict__.setdefault("stemmers", {})
    stem = stemmers.get(language)
    if stem is None:
        stem = stemmers[language] = _snowball().stemmer(language).stemWord
    return stem


def _stem(words: list[str], language: str) -> list[str]:
    cache = _stem_cache.setdefault(language, {})
    stem = None
    out = []
    for word in words:
        stemmed = cache.get(word)
        if stemmed is None:
            stem = stem or _stemmer(language)
            stemmed = stem(word)
            if len(cache) < STEM_CACHE_WORDS:
                cache[word] = stemmed
        out.append(stemmed)
    return out


@lru_cache(maxsize=16)
def _stopwords(language: str) -> frozenset[str]:
    words = BY_LANGUAGE.get(language, frozenset())
    if language == "arabic":
        return frozenset(word.translate(_ARABIC_FOLD) for word in words)
    return words


def analyze(text: str, language: str = "auto", fallback: str = "english") -> list[str]:
    """The keyword terms of ``text``: folded, tokenised, stopwords removed, stemmed."""
    lang = detect_language(text, fallback) if language == "auto" else language
    text = unicodedata.normalize("NFKC", text).casefold()
    if lang == "arabic":
        text = _ARABIC_MARKS.sub("", text).translate(_ARABIC_FOLD)
    stop = _stopwords(lang)
    words = [w for w in _WORD.findall(text) if w not in stop and not w.isspace()]
    words = [w.replace("_", "") for w in words]
    words = [w for w in words if w]
    return _stem(words, lang)
