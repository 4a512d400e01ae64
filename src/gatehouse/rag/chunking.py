"""Chunkers: cut a loaded document into pieces that fit the embedding model.

Every chunk is a slice ``text[start:end]`` of the document text, so a chunk
always points back at exactly where it came from, and nothing is invented or
lost between chunks except the deliberate overlap of token windows.

* :func:`token_windows`: fixed windows of ``size`` tokens, ``overlap`` shared.
* :func:`structure_chunks`: split at the strongest boundary available
  (headings, then blank lines, then line ends, then sentences), packing
  neighbouring pieces up to ``size`` tokens; a piece still too large falls back
  to token windows. Each chunk carries the heading path above it.
* :func:`semantic_chunks`: split between sentences where the similarity of
  adjacent sentence embeddings drops below a threshold, within ``size``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gatehouse.rag.tokenizer import TokenCounter

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?؟。])\s+")
_BLANK = re.compile(r"\n\s*\n")


@dataclass(frozen=True, slots=True)
class Piece:
    """A chunk as offsets into the document text, with its heading path."""

    start: int
    end: int
    heading: str = ""


def token_windows(
    text: str, tokens: TokenCounter, size: int, overlap: int, *, offset: int = 0, heading: str = ""
) -> list[Piece]:
    """Windows of ``size`` tokens sharing ``overlap`` tokens; offsets shifted by ``offset``."""
    spans = tokens.spans(text)
    if not spans:
        return [Piece(offset, offset + len(text), heading)] if text.strip() else []
    if len(spans) <= size:
        return [Piece(offset + _lstrip(text, 0), offset + _rstrip(text, len(text)), heading)]
    pieces = []
    first = 0
    while True:
        last = min(first + size, len(spans)) - 1
        # Never end inside a word: a word cut in two re-tokenises differently.
        while last > first and last + 1 < len(spans) and _joined(text, spans, last + 1):
            last -= 1
        start = 0 if first == 0 else spans[first][0]
        end = len(text) if last == len(spans) - 1 else spans[last][1]
        pieces.append(Piece(offset + start, offset + end, heading))
        if last == len(spans) - 1:
            return pieces
        following = max(last + 1 - overlap, first + 1)
        while following > first + 1 and _joined(text, spans, following):
            following -= 1  # start at the beginning of a word, too
        first = following


def _joined(text: str, spans: Sequence[tuple[int, int]], index: int) -> bool:
    """Whether token ``index`` continues the word of token ``index - 1``."""
    before, current = spans[index - 1], spans[index]
    return (
        current[0] == before[1]
        and text[current[0] : current[0] + 1].isalnum()
        and text[before[1] - 1 : before[1]].isalnum()
    )


def structure_chunks(text: str, tokens: TokenCounter, size: int, overlap: int) -> list[Piece]:
    """Split along the document's structure, then pack pieces up to ``size`` tokens."""
    counted: dict[tuple[int, int], int] = {}

    def count(a: int, b: int) -> int:
        # _pack has usually measured the span already: a passage that fits is
        # tokenised once, not twice.
        if (a, b) not in counted:
            counted[a, b] = len(tokens.spans(text[a:b]))
        return counted[a, b]

    pieces: list[Piece] = []
    for start, end, heading in _sections(text):
        for a, b in _pack(text, start, end, count, size):
            if count(a, b) > size:
                pieces.extend(
                    token_windows(text[a:b], tokens, size, overlap, offset=a, heading=heading)
                )
            else:
                pieces.append(Piece(a, b, heading))
    return [p for p in pieces if text[p.start : p.end].strip()]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence ``(start, end)`` offsets, the unit :func:`semantic_chunks` embeds."""
    return _split(text, 0, len(text), _SENTENCE_END) or [(0, len(text))]


def semantic_chunks(
    text: str,
    tokens: TokenCounter,
    size: int,
    sentences: Sequence[tuple[int, int]],
    vectors: np.ndarray[Any, np.dtype[np.float32]],
    threshold: float,
) -> list[Piece]:
    """Split between sentences whose embeddings are less similar than ``threshold``.

    ``vectors[i]`` is the normalised embedding of ``sentences[i]``; a chunk is
    also closed before it would pass ``size`` tokens.
    """
    if not sentences:
        return []
    similarity = np.sum(vectors[1:] * vectors[:-1], axis=1) if len(sentences) > 1 else []
    pieces: list[Piece] = []
    start, count = sentences[0][0], 0
    for index, (a, b) in enumerate(sentences):
        n = len(tokens.spans(text[a:b]))
        if index > 0 and (similarity[index - 1] < threshold or count + n > size):
            pieces.extend(
                structure_chunks_range(text, tokens, size, start, sentences[index - 1][1])
            )
            start, count = a, 0
        count += n
    pieces.extend(structure_chunks_range(text, tokens, size, start, sentences[-1][1]))
    return pieces


def structure_chunks_range(
    text: str, tokens: TokenCounter, size: int, start: int, end: int
) -> list[Piece]:
    """One span as a chunk, or token windows when a single sentence is over ``size``."""
    if len(tokens.spans(text[start:end])) <= size:
        return [Piece(start, end)] if text[start:end].strip() else []
    return token_windows(text[start:end], tokens, size, 0, offset=start)


def _sections(text: str) -> list[tuple[int, int, str]]:
    """Markdown sections: ``(start, end, heading path)``; the whole text when there are none."""
    matches = list(_HEADING.finditer(text))
    if not matches:
        return [(0, len(text), "")]
    sections = []
    if matches[0].start() > 0:
        sections.append((0, matches[0].start(), ""))
    path: list[tuple[int, str]] = []
    for index, match in enumerate(matches):
        level = len(match.group(1))
        path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, match.group(2))]
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        sections.append((match.start(), end, " > ".join(title for _, title in path)))
    return sections


def _pack(
    text: str, start: int, end: int, count: Callable[[int, int], int], size: int
) -> list[tuple[int, int]]:
    """Cut ``[start, end)`` at the strongest boundaries that keep pieces within ``size``.

    ``count(a, b)`` is the number of tokens of ``text[a:b]``.
    """
    if count(start, end) <= size:
        return [(start, end)]
    for boundary in (_BLANK, re.compile(r"\n"), _SENTENCE_END):
        parts = _split(text, start, end, boundary)
        if len(parts) > 1:
            break
    else:
        return [(start, end)]
    packed: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    for a, b in parts:
        if current is not None and count(current[0], b) <= size:
            current = (current[0], b)
            continue
        if current is not None:
            packed.append(current)
        current = (a, b)
    if current is not None:
        packed.append(current)
    result: list[tuple[int, int]] = []
    for a, b in packed:
        result.extend(_pack(text, a, b, count, size) if (a, b) != (start, end) else [(a, b)])
    return result


def _split(text: str, start: int, end: int, boundary: re.Pattern[str]) -> list[tuple[int, int]]:
    """The spans of ``[start, end)`` between matches of ``boundary`` (separators dropped)."""
    parts = []
    cursor = start
    for match in boundary.finditer(text, start, end):
        if match.start() > cursor:
            parts.append((cursor, match.start()))
        cursor = match.end()
    if cursor < end:
        parts.append((cursor, end))
    return [(a, b) for a, b in parts if text[a:b].strip()]


def _lstrip(text: str, index: int) -> int:
    return index + len(text[index:]) - len(text[index:].lstrip())


def _rstrip(text: str, index: int) -> int:
    return len(text[:index].rstrip())
