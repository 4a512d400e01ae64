"""Grounded answers: retrieve, decide whether anything relevant was found,
build the model's context, ask the chat model, and cite the sources.

Model calls (query condensing and expansion, embeddings, the answer) go
through the gateway as the caller, tagged ``rag.answer``. The pure parts
(context assembly, citation parsing) are in :mod:`gatehouse.rag.answer`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from gatehouse.core.principal import LOCAL, Principal
from gatehouse.core.types import ChatCompletionRequest, ChatMessage, RetrievedText
from gatehouse.gateway import ModelClient
from gatehouse.rag.answer import NO_ANSWER, Context, assemble, citations
from gatehouse.rag.catalog import Catalog
from gatehouse.rag.collection import Collection
from gatehouse.rag.model_calls import ModelCalls
from gatehouse.rag.models import AnswerEvent, AnswerRequest, AnswerResponse, CitationOut, SearchHit
from gatehouse.rag.query import condense
from gatehouse.rag.searching import Searcher, Wanted
from gatehouse.rag.tokenizer import tokenizer_for

# The default chat model has a 2048-token window: keep the sources well inside it.
CONTEXT_TOKENS = 900
ANSWER_TOP_K = 4
ANSWER_MAX_TOKENS = 256
HISTORY_TURNS = 4
MIN_DENSE_SIMILARITY = 0.3


class Answerer:
    """Answers questions over the collections of ``catalog`` with ``answer_model``."""

    def __init__(
        self,
        catalog: Catalog,
        models: ModelCalls,
        searcher: Searcher,
        *,
        answer_model: str,
        context_tokens: int = CONTEXT_TOKENS,
    ) -> None:
        self.catalog = catalog
        self.models = models
        self.searcher = searcher
        self.answer_model = answer_model
        self.context_tokens = context_tokens

    async def _prepare(
        self, collection: Collection, request: AnswerRequest, client: ModelClient
    ) -> tuple[Context | None, list[SearchHit]]:
        """Retrieve for ``request`` and build the model's context.

        The context is ``None`` when nothing relevant was found: no retrieved
        chunk shares a keyword with the question and none is semantically
        close (cosine below ``MIN_DENSE_SIMILARITY``).
        """
        top_k = request.top_k or ANSWER_TOP_K
        history = [ChatMessage(role=m.role, content=m.content) for m in request.history]
        if request.condense and history:
            standalone = await condense(client, self.answer_model, history, request.query)
            request = request.model_copy(update={"query": standalone})
        query, where = request.query, request.filter
        retrieve = self.searcher.retrieve
        hits = await retrieve(
            collection, query, Wanted(top_k, "hybrid", where), request.expansion, client
        )
        if not hits:
            return None, hits
        keyword = await retrieve(collection, query, Wanted(1, "keyword", where), "none", client)
        dense = await retrieve(collection, query, Wanted(1, "dense", where), "none", client)
        if not keyword and (not dense or dense[0].score < MIN_DENSE_SIMILARITY):
            return None, hits
        context = assemble(
            request.query,
            hits,
            tokenizer_for(collection.spec.embedding_model),
            self.context_tokens,
            history[-HISTORY_TURNS:],
        )
        return context, hits

    def chat_request(self, context: Context, request: AnswerRequest) -> ChatCompletionRequest:
        """The chat request that answers ``request`` from ``context``, noting the
        passages it quotes so the guard can treat them as data."""
        passages = tuple(
            RetrievedText(str(number), hit.text.strip())
            for number, hit in enumerate(context.sources, start=1)
        )
        return ChatCompletionRequest(
            model=request.model or self.answer_model,
            messages=context.messages,
            max_tokens=request.max_tokens or ANSWER_MAX_TOKENS,
            temperature=0.0,
        ).with_retrieved(passages)

    async def answer(
        self, name: str, request: AnswerRequest, *, caller: Principal = LOCAL
    ) -> AnswerResponse:
        """A grounded answer with numbered citations (not streamed)."""
        collection = self.catalog.open(name, caller=caller)
        client = self.models.client(caller, "rag.answer")
        context, hits = await self._prepare(collection, request, client)
        if context is None:
            return AnswerResponse(answer=NO_ANSWER, citations=[], results=hits)
        completion = await client.chat(self.chat_request(context, request))
        text = completion.choices[0].message.content or ""
        cited = [CitationOut(**c.model_dump()) for c in citations(text, context.sources)]
        return AnswerResponse(answer=text.strip(), citations=cited, results=hits)

    async def stream(
        self, name: str, request: AnswerRequest, *, caller: Principal = LOCAL
    ) -> AsyncIterator[AnswerEvent]:
        """The answer as events: the results, then text deltas, then the citations."""
        collection = self.catalog.open(name, caller=caller)
        client = self.models.client(caller, "rag.answer")
        context, hits = await self._prepare(collection, request, client)
        yield AnswerEvent(type="results", results=hits)
        if context is None:
            yield AnswerEvent(type="delta", content=NO_ANSWER)
            yield AnswerEvent(type="done", answer=NO_ANSWER, citations=[])
            return
        parts: list[str] = []
        async for chunk in await client.chat_stream(self.chat_request(context, request)):
            for choice in chunk.choices:
                if choice.delta.content:
                    parts.append(choice.delta.content)
                    yield AnswerEvent(type="delta", content=choice.delta.content)
        text = "".join(parts).strip()
        cited = [CitationOut(**c.model_dump()) for c in citations(text, context.sources)]
        yield AnswerEvent(type="done", answer=text, citations=cited)
