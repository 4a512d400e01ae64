"""The OpenAI-compatible routes: chat completions, embeddings, models.

Chat completions and embeddings are the hot path: raw ASGI endpoints
(``raw=True`` in the route table) that the server dispatches to before
Starlette's router, parse the body once with orjson + pydantic, and hand a
typed request to the gateway. The model listing is an ordinary endpoint.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gatehouse.core.errors import ValidationFailedError
from gatehouse.core.principal import Principal
from gatehouse.core.rerank import RerankResponse
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelCard,
)
from gatehouse.gateway import CallContext, Gateway
from gatehouse.gateway.remote import TAG_HEADER
from gatehouse.server.authz import AUTHENTICATED
from gatehouse.server.http import (
    JSONResponse,
    decode_body,
    decode_json,
    read_body,
    send_json,
    send_sse,
    sse_stream,
    to_json,
    validate_body,
)
from gatehouse.server.routes.admission import admit_request
from gatehouse.server.routes.prompts import PromptedChatCompletionRequest, render_prompt
from gatehouse.server.routes.table import RouteSpec


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def chat_completions(scope: Scope, receive: Receive, send: Send) -> None:
    """Raw ASGI: this is the hottest route, so it pays for no request/response objects."""
    headers = Headers(scope=scope)
    data = decode_json(headers.get("content-type"), await read_body(receive))
    state = scope["state"]
    # A stored template named in ``prompt``, rendered as the caller before the
    # request is validated: its messages come first (see docs/prompts.md). The
    # rendering is admitted first, as this request against the caller's rpm.
    rendered = None
    prompted = "prompt" in data
    if prompted:
        await admit_request(scope["app"].state, state["principal"])
        rendered = await render_prompt(scope["app"].state, data, state["principal"])
    ctx = CallContext(
        request_id=state["request_id"],
        endpoint="chat",
        request=validate_body(data, ChatCompletionRequest),
        headers=headers,
        principal=state["principal"],
        tag=_tag(headers) if rendered is None else rendered.tag(_tag(headers)),
        requests_admitted=prompted,
    )
    result = await _gateway_of(scope).handle(ctx)
    if isinstance(result, ChatCompletion):
        await send_json(send, to_json(result), ctx.response_headers)
        return
    if isinstance(result, EmbeddingResponse | RerankResponse):  # pragma: no cover - a bug
        raise TypeError("chat call produced an embedding response")
    # Pull the first chunk before answering, so that errors found while
    # preparing (bad parameters, context too long) get a real HTTP status.
    first = await anext(result)
    await send_sse(receive, send, sse_stream(first, result), ctx.response_headers)


async def embeddings(scope: Scope, receive: Receive, send: Send) -> None:
    headers = Headers(scope=scope)
    body = decode_body(headers.get("content-type"), await read_body(receive), EmbeddingRequest)
    state = scope["state"]
    ctx = CallContext(
        request_id=state["request_id"],
        endpoint="embeddings",
        request=body,
        headers=headers,
        principal=state["principal"],
        tag=_tag(headers),
    )
    result = await _gateway_of(scope).handle(ctx)
    assert isinstance(result, EmbeddingResponse)
    await send_json(send, to_json(result), ctx.response_headers)


def _tag(headers: Headers) -> str | None:
    """The ledger tag a caller gives its call (the RAG service: ``rag.search``, ...)."""
    tag = headers.get(TAG_HEADER)
    if tag is not None and not _TAG.fullmatch(tag):
        raise ValidationFailedError(
            f"{TAG_HEADER} must be 1 to 64 letters, digits or . _ : -", param=TAG_HEADER
        )
    return tag


_TAG = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _gateway_of(scope: Scope) -> Gateway:
    gateway: Gateway = scope["app"].state.gateway
    return gateway


async def list_models(request: Request) -> Response:
    """The models the caller may call: a key limited to some models sees only those."""
    caller: Principal = request.state.principal
    cards = _gateway(request).models(caller)
    return JSONResponse({"object": "list", "data": [card.model_dump() for card in cards]})


async def get_model(request: Request) -> Response:
    """One model; 404 for one the caller may not call, the same as for an absent one."""
    caller: Principal = request.state.principal
    return JSONResponse(_gateway(request).model(request.path_params["model"], caller))


ROUTES = [
    RouteSpec(
        "POST",
        "/v1/chat/completions",
        chat_completions,
        raw=True,
        summary="Create a chat completion (JSON, or SSE when stream=true)",
        request_model=PromptedChatCompletionRequest,
        response_model=ChatCompletion,
        stream_model=ChatCompletionChunk,
        tag="openai",
        scope="chat",
    ),
    RouteSpec(
        "POST",
        "/v1/embeddings",
        embeddings,
        raw=True,
        summary="Create embeddings",
        request_model=EmbeddingRequest,
        response_model=EmbeddingResponse,
        tag="openai",
        scope="embeddings",
    ),
    RouteSpec(
        "GET", "/v1/models", list_models, summary="List models", tag="openai", scope=AUTHENTICATED
    ),
    RouteSpec(
        "GET",
        "/v1/models/{model:path}",
        get_model,
        summary="Describe one model",
        response_model=ModelCard,
        tag="openai",
        scope=AUTHENTICATED,
    ),
]
