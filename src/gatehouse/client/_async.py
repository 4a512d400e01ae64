"""The asyncio client: the same calls as :class:`~gatehouse.client.Client`, awaited."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from gatehouse.client import _protocol as P
from gatehouse.client._base import (
    DEFAULT_TIMEOUT,
    build_request,
    default_headers,
    resolve_base_url,
    stream_request,
)
from gatehouse.client._models import (
    Answer,
    Collection,
    Document,
    IngestResult,
    Response,
    SearchHit,
    StoredPrompt,
)
from gatehouse.client._retry import RetryPolicy, Wait, attempts, connection_error
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)

T = TypeVar("T")


class AsyncClient:
    """An asyncio client for a gatehouse server, or for an app in this process.

    ``AsyncClient(app=create_app(settings))`` sends through
    ``httpx.ASGITransport``; ``async with`` runs the app's lifespan (start-up
    and shut-down of the gateway). Everything else is as :class:`Client`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        app: Any = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base_url = resolve_base_url(base_url, app is not None)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._app = app
        self._lifespan = contextlib.AsyncExitStack()
        if app is not None and transport is None:
            transport = httpx.ASGITransport(app=app)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=default_headers(api_key, headers),
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        await self._http.__aenter__()
        router = getattr(self._app, "router", None)
        if router is not None and hasattr(router, "lifespan_context"):
            # httpx.ASGITransport sends no lifespan events: run Starlette's here.
            await self._lifespan.enter_async_context(router.lifespan_context(self._app))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._lifespan.aclose()
        finally:
            await self._http.__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        await self._lifespan.aclose()
        await self._http.aclose()

    # -- chat and embeddings --

    async def chat(
        self, messages: P.Messages, *, model: str = "default", **params: Any
    ) -> ChatCompletion:
        """A chat completion; ``params`` are any OpenAI chat parameters."""
        return await self.complete(P.chat_request(model, messages, params))

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        return await self._call(P.chat(request))

    async def stream(
        self, messages: P.Messages, *, model: str = "default", **params: Any
    ) -> AsyncChatStream:
        """A streamed chat completion: ``async for`` it for typed chunks."""
        return await self.stream_request(P.chat_request(model, messages, params))

    async def stream_request(self, request: ChatCompletionRequest) -> AsyncChatStream:
        body = P.chat_stream_body(request)
        response = await self._send(stream_request(self._http, body), stream=True)
        return AsyncChatStream(response)

    async def embed(
        self, input: str | Sequence[str], *, model: str = "local/minilm", **params: Any
    ) -> EmbeddingResponse:
        text = input if isinstance(input, str) else list(input)
        return await self.embed_request(EmbeddingRequest(model=model, input=text, **params))

    async def embed_request(self, request: EmbeddingRequest) -> EmbeddingResponse:
        return await self._call(P.embed(request))

    async def responses(
        self,
        input: str | Sequence[Mapping[str, Any]],
        *,
        model: str = "default",
        **params: Any,
    ) -> Response:
        """``POST /v1/responses`` (not streamed): ``input`` is a string or input items."""
        return await self._call(P.responses(model, input, params))

    # -- prompt templates stored in the gateway --

    async def create_prompt(self, name: str, template: str, **fields: Any) -> StoredPrompt:
        """Store a template, or its next version; ``fields``: ``system``,
        ``variables``, ``description``, ``owner`` (as ``POST /v1/prompts``)."""
        return await self._call(P.create_prompt(name, template, fields))

    async def prompts(self) -> list[StoredPrompt]:
        """The latest version of each template this key may use."""
        return await self._call(P.list_prompts())

    async def prompt(self, name: str, version: int | None = None) -> StoredPrompt:
        """One version of a template (default: the latest)."""
        return await self._call(P.get_prompt(name, version))

    async def delete_prompt(self, name: str, version: int | None = None) -> list[int]:
        """Delete one version, or every version; the versions deleted."""
        return await self._call(P.delete_prompt(name, version))

    # -- RAG --

    async def create_collection(self, name: str, **settings: Any) -> Collection:
        return await self._call(P.create_collection(name, settings))

    async def collections(self) -> list[Collection]:
        return await self._call(P.list_collections())

    async def collection(self, name: str) -> Collection:
        return await self._call(P.get_collection(name))

    async def delete_collection(self, name: str) -> None:
        await self._call(P.delete_collection(name))

    async def ingest(
        self, collection: str, documents: Iterable[Document | Mapping[str, Any] | str]
    ) -> IngestResult:
        return await self._call(P.ingest(collection, documents))

    async def search(self, collection: str, query: str, **options: Any) -> list[SearchHit]:
        return await self._call(P.search(collection, query, options))

    async def answer(self, collection: str, query: str, **options: Any) -> Answer:
        return await self._call(P.answer(collection, query, options))

    # -- transport --

    async def _call(self, call: P.Call[T]) -> T:
        response = await self._send(build_request(self._http, call), stream=False)
        return call.parse(P.read_json(response.content) if response.content else None)

    async def _send(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        flow = attempts(request, self.retry, stream=stream)
        step = next(flow)
        while True:
            outcome: httpx.Response | httpx.TransportError | None = None
            if isinstance(step, Wait):
                await self._sleep(step.seconds)
            else:
                try:
                    outcome = await self._http.send(step.request, stream=step.stream)
                    if step.stream and outcome.status_code >= 400:
                        await outcome.aread()
                        await outcome.aclose()
                except httpx.TransportError as exc:
                    outcome = exc
            try:
                step = flow.send(outcome)
            except StopIteration as stop:
                response: httpx.Response = stop.value
                return response


class AsyncChatStream:
    """The chunks of a streamed chat completion, for ``async for``."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._decoder = P.SSEDecoder()
        self.request_id = response.headers.get("x-request-id")

    async def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        try:
            async for line in self._response.aiter_lines():
                chunk = self._decoder.feed(line)
                if chunk is not None:
                    yield chunk
                if self._decoder.done:
                    return
            self._decoder.finish()
        except httpx.TransportError as exc:
            raise connection_error(exc) from exc
        finally:
            await self._response.aclose()

    @property
    def usage(self) -> Usage | None:
        """The usage of the whole completion, once its final chunk has been read."""
        return self._decoder.usage

    async def text(self) -> str:
        return "".join([P.chunk_text(chunk) async for chunk in self])

    async def aclose(self) -> None:
        await self._response.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
