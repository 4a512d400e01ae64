"""The blocking client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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


class Client:
    """A blocking client for a gatehouse server, or for an app in this process.

    ``Client("http://host:8000", api_key="gh-...")`` talks HTTP;
    ``Client(app=create_app(settings))`` calls the ASGI app directly (use it
    as a context manager so the app starts and stops). ``api_key`` and
    ``base_url`` default to ``GATEHOUSE_API_KEY`` and ``GATEHOUSE_BASE_URL``.
    Calls are retried as ``retry`` says (:class:`RetryPolicy`); errors are
    :class:`~gatehouse.client.ClientError` subclasses.
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
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = resolve_base_url(base_url, app is not None)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        sent = default_headers(api_key, headers)
        self._http: httpx.Client
        if app is not None:
            # Starlette's portal-backed transport runs the async app from
            # blocking code, and its context manager runs the app's lifespan.
            from starlette.testclient import TestClient

            in_process: httpx.Client = TestClient(  # type: ignore[assignment]
                app, base_url=self.base_url, headers=sent, raise_server_exceptions=False
            )
            self._http = in_process
        else:
            self._http = httpx.Client(
                base_url=self.base_url, headers=sent, timeout=timeout, transport=transport
            )

    def __enter__(self) -> Self:
        self._http.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._http.__exit__(exc_type, exc, tb)

    def close(self) -> None:
        self._http.close()

    # -- chat and embeddings --

    def chat(
        self, messages: P.Messages, *, model: str = "default", **params: Any
    ) -> ChatCompletion:
        """A chat completion; ``params`` are any OpenAI chat parameters."""
        return self.complete(P.chat_request(model, messages, params))

    def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        """A chat completion for a prepared request."""
        return self._call(P.chat(request))

    def stream(self, messages: P.Messages, *, model: str = "default", **params: Any) -> ChatStream:
        """A streamed chat completion: iterate it for typed chunks."""
        return self.stream_request(P.chat_request(model, messages, params))

    def stream_request(self, request: ChatCompletionRequest) -> ChatStream:
        response = self._send(stream_request(self._http, P.chat_stream_body(request)), stream=True)
        return ChatStream(response)

    def embed(
        self, input: str | Sequence[str], *, model: str = "local/minilm", **params: Any
    ) -> EmbeddingResponse:
        """Embeddings of one text or a list of texts (floats, in input order)."""
        text = input if isinstance(input, str) else list(input)
        return self.embed_request(EmbeddingRequest(model=model, input=text, **params))

    def embed_request(self, request: EmbeddingRequest) -> EmbeddingResponse:
        return self._call(P.embed(request))

    def responses(
        self,
        input: str | Sequence[Mapping[str, Any]],
        *,
        model: str = "default",
        **params: Any,
    ) -> Response:
        """``POST /v1/responses`` (not streamed): ``input`` is a string or input items."""
        return self._call(P.responses(model, input, params))

    # -- prompt templates stored in the gateway --

    def create_prompt(self, name: str, template: str, **fields: Any) -> StoredPrompt:
        """Store a template, or its next version; ``fields``: ``system``,
        ``variables``, ``description``, ``owner`` (as ``POST /v1/prompts``)."""
        return self._call(P.create_prompt(name, template, fields))

    def prompts(self) -> list[StoredPrompt]:
        """The latest version of each template this key may use."""
        return self._call(P.list_prompts())

    def prompt(self, name: str, version: int | None = None) -> StoredPrompt:
        """One version of a template (default: the latest)."""
        return self._call(P.get_prompt(name, version))

    def delete_prompt(self, name: str, version: int | None = None) -> list[int]:
        """Delete one version, or every version; the versions deleted."""
        return self._call(P.delete_prompt(name, version))

    # -- RAG --

    def create_collection(self, name: str, **settings: Any) -> Collection:
        """Create a collection; ``settings`` as in ``POST /v1/rag/collections``."""
        return self._call(P.create_collection(name, settings))

    def collections(self) -> list[Collection]:
        return self._call(P.list_collections())

    def collection(self, name: str) -> Collection:
        return self._call(P.get_collection(name))

    def delete_collection(self, name: str) -> None:
        self._call(P.delete_collection(name))

    def ingest(
        self, collection: str, documents: Iterable[Document | Mapping[str, Any] | str]
    ) -> IngestResult:
        """Add or replace documents (texts, :class:`Document` or dicts)."""
        return self._call(P.ingest(collection, documents))

    def search(self, collection: str, query: str, **options: Any) -> list[SearchHit]:
        """Search a collection; ``options``: ``top_k``, ``mode``, ``filter``, ``rerank``..."""
        return self._call(P.search(collection, query, options))

    def answer(self, collection: str, query: str, **options: Any) -> Answer:
        """An answer from a collection, with citations."""
        return self._call(P.answer(collection, query, options))

    # -- transport --

    def _call(self, call: P.Call[T]) -> T:
        response = self._send(build_request(self._http, call), stream=False)
        return call.parse(P.read_json(response.content) if response.content else None)

    def _send(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        flow = attempts(request, self.retry, stream=stream)
        step = next(flow)
        while True:
            outcome: httpx.Response | httpx.TransportError | None = None
            if isinstance(step, Wait):
                self._sleep(step.seconds)
            else:
                try:
                    outcome = self._http.send(step.request, stream=step.stream)
                    if step.stream and outcome.status_code >= 400:
                        outcome.read()
                        outcome.close()
                except httpx.TransportError as exc:
                    outcome = exc
            try:
                step = flow.send(outcome)
            except StopIteration as stop:
                response: httpx.Response = stop.value
                return response


class ChatStream:
    """The chunks of a streamed chat completion, read as they arrive.

    Iterate once; ``usage`` is set when the final usage chunk has been read.
    Closes the connection when done (or use it as a context manager).
    """

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._decoder = P.SSEDecoder()
        self.request_id = response.headers.get("x-request-id")

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        try:
            for line in self._response.iter_lines():
                chunk = self._decoder.feed(line)
                if chunk is not None:
                    yield chunk
                if self._decoder.done:
                    return
            self._decoder.finish()
        except httpx.TransportError as exc:
            raise connection_error(exc) from exc
        finally:
            self._response.close()

    @property
    def usage(self) -> Usage | None:
        """The usage of the whole completion, once its final chunk has been read."""
        return self._decoder.usage

    def text(self) -> str:
        """Read the rest of the stream and return its text."""
        return "".join(P.chunk_text(chunk) for chunk in self)

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
