"""Deterministic answer metrics: exact match, token F1, citation validity. Pure, no I/O.

Exact match and token F1 are SQuAD's (the official evaluation script, v2.0):
both strings are normalised (lower case, punctuation and the articles
``a``/``an``/``the`` removed, white space collapsed) before comparing, and
with several references the best score counts. The evaluation first strips
a gatehouse answer's ``[n]`` citation markers (:func:`strip_citations`), so
citing does not cost F1.

Citation validity checks a gatehouse answer's ``[n]`` markers against the
context it was given (see :mod:`gatehouse.rag.answer`): each citation must
name a chunk that was retrieved, and a span quoted right before a marker
(``"..." [2]``) must occur in that chunk.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)
_MARKER = re.compile(r"\[(\d{1,3})\]")
# A quotation (straight or curly double quotes) followed by one or more markers.
_QUOTED = re.compile(r"[\"\u201c]([^\"\u201c\u201d]{1,500})[\"\u201d]\s*((?:\[\d{1,3}\]\s*)+)")


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    lowered = text.lower()
    no_punctuation = "".join(ch for ch in lowered if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", no_punctuation).split())


def strip_citations(answer: str) -> str:
    """``answer`` without its ``[n]`` citation markers, which are no part of the answer."""
    return " ".join(_MARKER.sub(" ", answer).split())


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised reference, else 0.0."""
    answer = normalize_answer(prediction)
    return max((float(answer == normalize_answer(ref)) for ref in references), default=0.0)


def token_f1(prediction: str, references: Sequence[str]) -> float:
    """The best token-overlap F1 between the prediction and a reference (SQuAD v2.0)."""
    return max((_f1(prediction, ref) for ref in references), default=0.0)


def _f1(prediction: str, reference: str) -> float:
    predicted = normalize_answer(prediction).split()
    gold = normalize_answer(reference).split()
    if not predicted or not gold:
        # SQuAD v2.0: two empty answers agree; one empty answer shares nothing.
        return float(predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision = common / len(predicted)
    recall = common / len(gold)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True, slots=True)
class CitedChunk:
    """A citation as a gatehouse answer returns it: marker number -> chunk."""

    index: int
    chunk_id: str


@dataclass(frozen=True, slots=True)
class CitationCheck:
    """The verdict on one answer's citations.

    ``checked`` counts each distinct marker in the text, plus each returned
    citation that no marker names (gatehouse cites every source when the model
    cites none); ``problems`` says what is wrong with the others.
    """

    checked: int
    valid: int
    problems: list[str] = field(default_factory=list)

    @property
    def score(self) -> float | None:
        """Valid over checked; ``None`` when the answer cites nothing."""
        return self.valid / self.checked if self.checked else None


def check_citations(
    answer: str, citations: Sequence[CitedChunk], context: Mapping[str, str]
) -> CitationCheck:
    """Check ``answer``'s citations against ``context`` (chunk id -> text retrieved).

    A marker ``[n]`` is valid when a citation numbered ``n`` names a chunk of the
    context and every span quoted right before the marker occurs in that chunk
    (compared case-insensitively, white space collapsed).
    """
    by_index = {c.index: c.chunk_id for c in citations}
    quotes: dict[int, list[str]] = {}
    for match in _QUOTED.finditer(answer):
        for number in _MARKER.findall(match.group(2)):
            quotes.setdefault(int(number), []).append(match.group(1))
    markers = list(dict.fromkeys(int(n) for n in _MARKER.findall(answer)))
    problems: list[str] = []
    valid = 0
    for number in markers:
        chunk = by_index.get(number)
        if chunk is None:
            problems.append(f"[{number}] names no source of the answer")
        elif chunk not in context:
            problems.append(f"[{number}] cites chunk {chunk}, which was not retrieved")
        else:
            missing = [q for q in quotes.get(number, []) if not _contains(context[chunk], q)]
            if missing:
                problems.append(f"[{number}] quotes {missing[0]!r}, which chunk {chunk} lacks")
            else:
                valid += 1
    implicit = [c for c in citations if c.index not in markers]
    for citation in implicit:
        if citation.chunk_id in context:
            valid += 1
        else:
            problems.append(
                f"citation {citation.index} names chunk {citation.chunk_id}, not retrieved"
            )
    return CitationCheck(checked=len(markers) + len(implicit), valid=valid, problems=problems)


def _contains(text: str, span: str) -> bool:
    return " ".join(span.split()).casefold() in " ".join(text.split()).casefold()
