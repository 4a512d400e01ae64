"""Grounded answers: context assembly within a token budget, the prompt, citations.

Pure functions, no I/O: the engine retrieves and calls the model; this module
decides what the model sees and how its ``[n]`` markers map back to chunks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from gatehouse.core.types import ChatMessage
from gatehouse.rag.models import SearchHit
from gatehouse.rag.tokenizer import TokenCounter

NO_ANSWER = "I don't know: the collection has nothing relevant to this question."
SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources below. Cite the sources you use "
    "with their number in square brackets, like [1]. If the sources do not contain the "
    "answer, reply exactly: I don't know."
)
_MARKER = re.compile(r"\[(\d{1,3})\]")


class Citation(BaseModel):
    index: int
    document_id: str
    chunk_id: str


@dataclass(frozen=True, slots=True)
class Context:
    """The sources the model sees, numbered from 1, and the prompt built from them."""

    sources: list[SearchHit]
    messages: list[ChatMessage]


def assemble(
    question: str,
    hits: Sequence[SearchHit],
    tokens: TokenCounter,
    budget: int,
    history: Sequence[ChatMessage] = (),
) -> Context:
    """Number the best distinct chunks that fit in ``budget`` tokens and build the prompt.

    Hits keep their retrieval order (best first); a chunk whose text repeats
    one already taken (overlapping windows, duplicate documents) is skipped;
    the first chunk that would pass the budget is cut to fit, later ones dropped.
    """
    sources: list[SearchHit] = []
    seen: set[str] = set()
    used = 0
    for hit in hits:
        key = " ".join(hit.text.split()).lower()
        if key in seen:
            continue
        spans = tokens.spans(hit.text)
        room = budget - used
        if room <= 16:
            break
        if len(spans) > room:
            hit = hit.model_copy(update={"text": hit.text[: spans[room - 1][1]]})
            spans = spans[:room]
        seen.add(key)
        sources.append(hit)
        used += len(spans)
    blocks = "\n\n".join(f"[{i}] {hit.text.strip()}" for i, hit in enumerate(sources, start=1))
    messages = [
        ChatMessage(role="system", content=f"{SYSTEM_PROMPT}\n\nSources:\n{blocks}"),
        *history,
        ChatMessage(role="user", content=question),
    ]
    return Context(sources=sources, messages=messages)


def citations(answer: str, sources: Sequence[SearchHit]) -> list[Citation]:
    """The sources the answer cites with ``[n]``, in order of first mention.

    When the model cites nothing but did answer, every source it was given is
    returned: the answer was produced from exactly those chunks.
    """
    cited: list[int] = []
    for match in _MARKER.finditer(answer):
        number = int(match.group(1))
        if 1 <= number <= len(sources) and number not in cited:
            cited.append(number)
    if not cited and not is_refusal(answer):
        cited = list(range(1, len(sources) + 1))
    return [
        Citation(index=n, document_id=sources[n - 1].document_id, chunk_id=sources[n - 1].chunk_id)
        for n in cited
    ]


def is_refusal(answer: str) -> bool:
    return answer.strip().lower().startswith("i don't know") or not answer.strip()
