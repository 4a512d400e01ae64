"""The playground: chat with a model group, and ask a RAG collection, as the session's caller.

Every call made here runs as the principal of the session (the logged-in
key, or the single sign-on user with the scopes of their role), through the
same gateway pipeline and RAG engine as the API, so that caller's scopes,
allowed models, rate limits, budget and ledger apply, never an
administrator's. The page's script (``static/playground.js``) talks to the
JSON and server-sent-event endpoints below with the session's CSRF token;
their errors come back in the OpenAI shape with the right status, for the
script to show.

    GET  /ui/playground                                  the page
    POST /ui/playground/chat                             chat, streamed (SSE of chunks)
    POST /ui/playground/collections                      create a collection (rag:write)
    POST /ui/playground/collections/{c}/files?name=F     one file's bytes -> documents (rag:write)
    POST /ui/playground/collections/{c}/answer           a cited answer, streamed (rag:read)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import PurePath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.config import Settings
from gatehouse.core.errors import (
    GatehouseError,
    MissingExtraError,
    NotFoundError,
    ValidationFailedError,
)
from gatehouse.core.principal import Principal
from gatehouse.core.rerank import RerankResponse
from gatehouse.core.types import ChatCompletion, ChatCompletionRequest, EmbeddingResponse
from gatehouse.gateway import CallContext, Gateway
from gatehouse.rag import AnswerRequest, CollectionSpec, DocumentIn, RagEngine
from gatehouse.rag.loaders import load_bytes
from gatehouse.server.http import (
    JSONResponse,
    error_response,
    parse_body,
    sse_response,
    sse_stream,
)
from gatehouse.server.routes import rag as rag_routes
from gatehouse.server.routes.table import RouteSpec
from gatehouse.ui.nav import NAV, NavItem
from gatehouse.ui.pages import render, session_of, ui_route

TAG = "ui.playground"


class PlaygroundMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(max_length=100_000)


class PlaygroundChat(BaseModel):
    """What the page sends: the conversation so far and the parameters."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    messages: list[PlaygroundMessage] = Field(min_length=1, max_length=200)
    system: str = Field(default="", max_length=20_000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1, le=32_768)

    def to_request(self) -> ChatCompletionRequest:
        messages = [m.model_dump() for m in self.messages]
        if self.system.strip():
            messages.insert(0, {"role": "system", "content": self.system})
        return ChatCompletionRequest.model_validate(
            {
                "model": self.model,
                "messages": messages,
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )


class NewCollection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    embedding_model: str | None = None  # the collection's default when not given


def usable_models(
    gateway: Gateway, principal: Principal, kind: Literal["chat", "embedding"]
) -> list[str]:
    """The models (groups and aliases) of ``kind`` this caller may use, by name."""
    names = {
        entry.name
        for entry in gateway.registry.entries()
        if (entry.group.serves_chat() if kind == "chat" else entry.group.serves_embeddings())
        and principal.may_use(entry.name)
    }
    return sorted(names)


async def page(request: Request) -> Response:
    principal = session_of(request).principal
    gateway: Gateway = request.app.state.gateway
    collections: list[str] = []
    rag_note = ""
    if principal.has_scope("rag:read"):
        try:
            found = _engine(request).collections(caller=principal)
            collections = [c.name for c in found]
        except (MissingExtraError, NotFoundError) as exc:
            rag_note = exc.message
    else:
        rag_note = "Your credential lacks the 'rag:read' scope."
    return render(
        request,
        "playground.html",
        {
            "models": usable_models(gateway, principal, "chat"),
            "embedding_models": usable_models(gateway, principal, "embedding"),
            "collections": collections,
            "rag_note": rag_note,
            "can_chat": principal.has_scope("chat"),
            "can_read": principal.has_scope("rag:read") and not rag_note,
            "can_write": principal.has_scope("rag:write") and not rag_note,
        },
    )


def _engine(request: Request) -> RagEngine:
    """The RAG engine, where this process serves RAG (not in a ``gateway``-only role)."""
    settings: Settings = request.app.state.settings
    if settings.server.role == "gateway":
        raise NotFoundError("RAG is served by the rag service of this deployment, not here.")
    return rag_routes.engine(request)


Action = Callable[[Request, Principal], Awaitable[Response]]


def _api(needs: str, action: Action) -> Callable[[Request], Awaitable[Response]]:
    """A JSON action of the page, as the session's caller holding ``needs``; its
    errors in the OpenAI shape (the script shows the message)."""

    async def endpoint(request: Request) -> Response:
        principal = session_of(request).principal
        try:
            principal.require(needs)
            return await action(request, principal)
        except GatehouseError as exc:
            return error_response(exc)

    endpoint.__name__ = action.__name__
    return endpoint


async def chat(request: Request, principal: Principal) -> Response:
    body = await parse_body(request, PlaygroundChat)
    ctx = CallContext(
        request_id=request.scope["state"]["request_id"],
        endpoint="chat",
        request=body.to_request(),
        principal=principal,
        tag=TAG,
    )
    gateway: Gateway = request.app.state.gateway
    result = await gateway.handle(ctx)
    if isinstance(result, ChatCompletion):  # a cache hit of a streamed request answers whole
        return JSONResponse(result)
    if isinstance(result, EmbeddingResponse | RerankResponse):  # pragma: no cover - a bug
        raise TypeError("chat call produced an embedding response")
    # Errors found while preparing (a model not allowed, a budget spent) get a status.
    first = await anext(result)
    return sse_response(sse_stream(first, result), headers=ctx.response_headers)


async def create_collection(request: Request, principal: Principal) -> Response:
    body = await parse_body(request, NewCollection)
    spec = CollectionSpec.model_validate(body.model_dump(exclude_none=True))
    info = _engine(request).create_collection(spec, caller=principal)
    return JSONResponse(info, status_code=201)


async def upload(request: Request, principal: Principal) -> Response:
    """One file, sent as the raw request body (the page shows the upload's progress)."""
    raw_name = request.query_params.get("name", "")
    name = PurePath(raw_name).name  # a browser sends a bare name; never a path
    if not name:
        raise ValidationFailedError("name the uploaded file: ?name=<file name>", param="name")
    loaded = list(load_bytes(await request.body(), PurePath(name)))
    # A file is one document, but for a .jsonl file's lines: those without an
    # id of their own are told apart by their place in the file.
    documents = [
        DocumentIn(
            id=doc.id or (f"upload:{name}" if len(loaded) == 1 else f"upload:{name}#{number}"),
            text=doc.text,
            title=doc.title,
            source=name,
            metadata={
                k: v for k, v in doc.metadata.items() if isinstance(v, str | int | float | bool)
            },
        )
        for number, doc in enumerate(loaded, start=1)
    ]
    collection = request.path_params["collection"]
    result = await _engine(request).add_documents(collection, documents, caller=principal)
    return JSONResponse(result)


async def answer(request: Request, principal: Principal) -> Response:
    body = await parse_body(request, AnswerRequest)
    body = body.model_copy(update={"stream": True})
    events = _engine(request).answer_stream(
        request.path_params["collection"], body, caller=principal
    )
    first = await anext(events)  # retrieval errors (a collection not found) get a status
    return sse_response(sse_stream(first, events, exclude_none=True))


_C = "/ui/playground/collections"
ROUTES: list[RouteSpec] = [
    ui_route("GET", "/ui/playground", page, "The playground: chat and RAG", role="viewer"),
    ui_route("POST", "/ui/playground/chat", _api("chat", chat), "Playground chat", role="viewer"),
    ui_route(
        "POST",
        _C,
        _api("rag:write", create_collection),
        "Playground: create a collection",
        role="viewer",
    ),
    ui_route(
        "POST",
        _C + "/{collection}/files",
        _api("rag:write", upload),
        "Playground: add one uploaded file to a collection",
        role="viewer",
    ),
    ui_route(
        "POST",
        _C + "/{collection}/answer",
        _api("rag:read", answer),
        "Playground: a cited answer from a collection",
        role="viewer",
    ),
]
NAV.append(NavItem("Playground", "/ui/playground", "viewer", "Chat with a model; ask a collection"))
