"""Text analysis for keyword search: normalise, tokenise, drop stopwords, stem.

The analyzer is language-aware per text: the script of the text picks the
language when the collection says ``auto`` (Arabic script -> the Arabic
Snowball stemmer and Arabic normalisation; anything else -> the collection's
fallback language, English by default). Queries and passages go through the
same function, so their terms meet.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

import snowballstemmer

from gatehouse.rag.stopwords import BY_LANGUAGE

LANGUAGES = ("auto", *sorted(snowballstemmer.algorithms()))

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


@lru_cache(maxsize=16)
def _stemmer(language: str) -> Callable[[list[str]], list[str]]:
    stemmer = snowballstemmer.stemmer(language)
    return stemmer.stemWords  # type: ignore[no-any-return]


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
    return _stemmer(lang)(words)
