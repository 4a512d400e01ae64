"""Rerankers: reorder retrieved chunks with a slower, sharper judge. Opt-in.

:class:`LLMReranker` asks a chat model through the gateway to grade each
chunk's relevance from 0 to 10 and sorts by the grade (ties keep retrieval
order). :class:`~gatehouse.rag.cross_encoder.CrossEncoderReranker` scores
each ``(query, chunk)`` pair with a local cross-encoder named by the
collection's ``cross_encoder`` setting; none ships with gatehouse.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from gatehouse.core.types import ChatCompletionRequest, ChatMessage
from gatehouse.gateway import ModelClient
from gatehouse.rag.models import SearchHit

GRADE_PROMPT = (
    "Grade how well the passage answers the question, from 0 (unrelated) to 10 "
    "(answers it fully). Reply with the number only."
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


class Reranker(Protocol):
    async def rerank(self, query: str, hits: Sequence[SearchHit]) -> list[SearchHit]:
        """``hits`` reordered best first, each with its new score."""


class LLMReranker:
    """Grades each hit with a chat model; an unparseable reply grades 0."""

    def __init__(self, client: ModelClient, model: str) -> None:
        self.client = client
        self.model = model

    async def rerank(self, query: str, hits: Sequence[SearchHit]) -> list[SearchHit]:
        graded = []
        for hit in hits:
            request = ChatCompletionRequest(
                model=self.model,
                messages=[
                    ChatMessage(role="system", content=GRADE_PROMPT),
                    ChatMessage(
                        role="user", content=f"Question: {query}\n\nPassage: {hit.text[:2000]}"
                    ),
                ],
                max_tokens=4,
                temperature=0.0,
            )
            reply = (await self.client.chat(request)).choices[0].message.content or ""
            graded.append(hit.model_copy(update={"score": parse_grade(reply)}))
        return sorted(graded, key=lambda h: h.score, reverse=True)


def parse_grade(reply: str) -> float:
    """The first number in ``reply``, clamped to 0-10; 0 when there is none."""
    match = _NUMBER.search(reply)
    return min(10.0, max(0.0, float(match.group()))) if match else 0.0
