"""What each client call sends and how its answer is read: no I/O here.

A :class:`Call` names the HTTP method, path and JSON body of one API call and
the function that turns the answer's JSON into a typed result. Both clients
build their calls with the functions below and differ only in how they send
them (:mod:`gatehouse.client._retry` decides about retries).
:class:`SSEDecoder` turns the lines of a chat stream into typed chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import orjson
from pydantic import BaseModel, ValidationError

from gatehouse.client._errors import APIConnectionError, ResponseFormatError, StreamError
from gatehouse.client._models import (
    Answer,
    Collection,
    Document,
    IngestResult,
    Response,
    SearchHit,
    StoredPrompt,
)
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# What a chat call accepts as messages: one user text, or messages as models or dicts.
Messages = str | Sequence[ChatMessage | Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API call: where it goes, what it sends, how its JSON answer is read."""

    method: str
    path: str
    parse: Callable[[Any], T]
    body: Any = None
    params: Mapping[str, str] | None = None


def _model(cls: type[M]) -> Callable[[Any], M]:
    def parse(data: Any) -> M:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ResponseFormatError(f"unexpected {cls.__name__} answer: {exc}") from None

    return parse


def _field(key: str, parse: Callable[[Any], T]) -> Callable[[Any], T]:
    def read(data: Any) -> T:
        if not isinstance(data, dict) or key not in data:
            raise ResponseFormatError(f"the answer has no {key!r} field")
        return parse(data[key])

    return read


def _list(parse: Callable[[Any], T]) -> Callable[[Any], list[T]]:
    def read(data: Any) -> list[T]:
        if not isinstance(data, list):
            raise ResponseFormatError("expected a list in the answer")
        return [parse(item) for item in data]

    return read


def _nothing(data: Any) -> None:
    return None


def messages_of(messages: Messages) -> list[ChatMessage]:
    if isinstance(messages, str):
        return [ChatMessage(role="user", content=messages)]
    return [m if isinstance(m, ChatMessage) else ChatMessage.model_validate(m) for m in messages]


def chat_request(
    model: str, messages: Messages, params: Mapping[str, Any]
) -> ChatCompletionRequest:
    """The request; with ``prompt`` (a stored template the gateway renders,
    whose messages come first) ``messages`` may be empty."""
    own = messages_of(messages)
    if own or params.get("prompt") is None:
        return ChatCompletionRequest.model_validate({**params, "model": model, "messages": own})
    # Validated with a stand-in for the messages the gateway will render.
    request = ChatCompletionRequest.model_validate(
        {**params, "model": model, "messages": [ChatMessage(role="user", content="")]}
    )
    request.messages = []
    return request


def _dump(request: BaseModel) -> dict[str, Any]:
    return request.model_dump(mode="json", exclude_none=True)


def chat(request: ChatCompletionRequest) -> Call[ChatCompletion]:
    body = _dump(request)
    body["stream"] = False
    body.pop("stream_options", None)
    return Call("POST", "/v1/chat/completions", _model(ChatCompletion), body)


def chat_stream_body(request: ChatCompletionRequest) -> dict[str, Any]:
    body = _dump(request)
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    return body


def embed(request: EmbeddingRequest) -> Call[EmbeddingResponse]:
    body = _dump(request)
    body["encoding_format"] = "float"
    return Call("POST", "/v1/embeddings", _model(EmbeddingResponse), body)


def responses(
    model: str, input: str | Sequence[Mapping[str, Any]], params: Mapping[str, Any]
) -> Call[Response]:
    body = {**params, "model": model, "input": input if isinstance(input, str) else list(input)}
    body["stream"] = False
    return Call("POST", "/v1/responses", _model(Response), body)


_RAG = "/v1/rag/collections"


def _collection_path(name: str, *rest: str) -> str:
    return "/".join([_RAG, quote(name, safe=""), *rest])


def create_collection(name: str, settings: Mapping[str, Any]) -> Call[Collection]:
    return Call("POST", _RAG, _model(Collection), {**settings, "name": name})


def list_collections() -> Call[list[Collection]]:
    return Call("GET", _RAG, _field("data", _list(_model(Collection))))


def get_collection(name: str) -> Call[Collection]:
    return Call("GET", _collection_path(name), _model(Collection))


def delete_collection(name: str) -> Call[None]:
    return Call("DELETE", _collection_path(name), _nothing)


def ingest(
    name: str, documents: Iterable[Document | Mapping[str, Any] | str]
) -> Call[IngestResult]:
    docs = [
        Document(text=d) if isinstance(d, str) else d if isinstance(d, Document) else Document(**d)
        for d in documents
    ]
    body = {"documents": [d.model_dump(exclude_defaults=True) for d in docs]}
    return Call("POST", _collection_path(name, "documents"), _model(IngestResult), body)


def search(name: str, query: str, options: Mapping[str, Any]) -> Call[list[SearchHit]]:
    body = {**{k: v for k, v in options.items() if v is not None}, "query": query}
    return Call(
        "POST", _collection_path(name, "search"), _field("results", _list(_model(SearchHit))), body
    )


def answer(name: str, query: str, options: Mapping[str, Any]) -> Call[Answer]:
    body = {**{k: v for k, v in options.items() if v is not None}, "query": query}
    body["stream"] = False
    return Call("POST", _collection_path(name, "answer"), _model(Answer), body)


_PROMPTS = "/v1/prompts"


def _prompt_path(name: str, version: int | None) -> str:
    path = f"{_PROMPTS}/{quote(name, safe='')}"
    return path if version is None else f"{path}/versions/{version}"


def create_prompt(name: str, template: str, fields: Mapping[str, Any]) -> Call[StoredPrompt]:
    body = {**fields, "name": name, "template": template}
    return Call("POST", _PROMPTS, _model(StoredPrompt), body)


def list_prompts() -> Call[list[StoredPrompt]]:
    return Call("GET", _PROMPTS, _field("data", _list(_model(StoredPrompt))))


def get_prompt(name: str, version: int | None) -> Call[StoredPrompt]:
    return Call("GET", _prompt_path(name, version), _model(StoredPrompt))


def delete_prompt(name: str, version: int | None) -> Call[list[int]]:
    return Call("DELETE", _prompt_path(name, version), _field("versions", _list(int)))


def read_json(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        raise ResponseFormatError(f"the answer is not JSON: {content[:200]!r}") from None


class SSEDecoder:
    """Server-sent events of a chat stream, line by line, into typed chunks.

    ``feed`` takes one line (without its end of line) and returns the chunk an
    event completes, if any. ``done`` turns true at ``data: [DONE]``; an
    ``{"error": ...}`` event raises :class:`StreamError`. ``usage`` is the last
    usage a chunk carried.
    """

    def __init__(self) -> None:
        self._data: list[str] = []
        self.done = False
        self.usage: Usage | None = None

    def feed(self, line: str) -> ChatCompletionChunk | None:
        if line.startswith(":"):  # a comment (keep-alive)
            return None
        if line:
            field, _, value = line.partition(":")
            if field == "data":
                self._data.append(value[1:] if value.startswith(" ") else value)
            return None
        if not self._data:
            return None
        data, self._data = "\n".join(self._data), []
        return self._event(data)

    def finish(self) -> None:
        """At the end of the body: a stream cut before ``[DONE]`` raises."""
        self.feed("")
        if not self.done:
            raise APIConnectionError("the stream ended before its [DONE] event")

    def _event(self, data: str) -> ChatCompletionChunk | None:
        if data.strip() == "[DONE]":
            self.done = True
            return None
        payload = read_json(data.encode())
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            error = payload["error"]
            raise StreamError(
                str(error.get("message") or "the stream failed"),
                type=error.get("type"),
                code=error.get("code"),
            )
        try:
            chunk = ChatCompletionChunk.model_validate(payload)
        except ValidationError as exc:
            raise ResponseFormatError(f"unexpected chunk in the stream: {exc}") from None
        self.usage = chunk.usage or self.usage
        return chunk


def chunk_text(chunk: ChatCompletionChunk) -> str:
    """The text a chunk adds to the first choice."""
    if not chunk.choices:
        return ""
    return chunk.choices[0].delta.content or ""
