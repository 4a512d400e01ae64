"""Scripted chat clients and answer sources for the eval tests: no server, no model."""

from __future__ import annotations

from collections.abc import Callable

from gatehouse.core.types import ChatCompletion, ChatCompletionRequest
from gatehouse.rag.models import AnswerRequest, AnswerResponse, CitationOut, SearchHit

from .prompt_fakes import completion

Reply = str | Exception


class ScriptedChat:
    """Answers each chat call with the next scripted reply, or with ``by_prompt(request)``."""

    def __init__(
        self,
        replies: list[Reply] | None = None,
        by_prompt: Callable[[ChatCompletionRequest], Reply] | None = None,
    ) -> None:
        self.replies = list(replies or [])
        self.by_prompt = by_prompt
        self.calls: list[ChatCompletionRequest] = []

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        self.calls.append(request)
        reply = self.by_prompt(request) if self.by_prompt else self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return completion(reply, tokens=12)


def hit(chunk: str, text: str) -> SearchHit:
    return SearchHit(
        document_id=chunk.split("#")[0], chunk_id=chunk, text=text, score=1.0, metadata={}
    )


class FixedAnswers:
    """A RAG answer source that answers from a table: question -> (answer, hits, cited)."""

    def __init__(
        self, table: dict[str, tuple[str, list[SearchHit], list[int]] | Exception]
    ) -> None:
        self.table = table
        self.requests: list[tuple[str, AnswerRequest]] = []

    async def answer(self, collection: str, request: AnswerRequest) -> AnswerResponse:
        self.requests.append((collection, request))
        entry = self.table[request.query]
        if isinstance(entry, Exception):
            raise entry
        text, hits, cited = entry
        citations = [
            CitationOut(index=n, document_id=hits[n - 1].document_id, chunk_id=hits[n - 1].chunk_id)
            for n in cited
        ]
        return AnswerResponse(answer=text, citations=citations, results=hits)
