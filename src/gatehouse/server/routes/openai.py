"""The OpenAI-compatible routes: chat completions, embeddings, models.

These are the hot path: plain Starlette endpoints that parse the body once
with orjson + pydantic and hand a typed request to the gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.errors import GatehouseError
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelCard,
)
from gatehouse.gateway import CallContext, Gateway
from gatehouse.gateway.pipeline import Endpoint
from gatehouse.server.http import (
    SSE_DONE,
    JSONResponse,
    parse_body,
    sse_event,
    sse_response,
)
from gatehouse.server.routes.table import RouteSpec


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _context(
    request: Request, endpoint: Endpoint, body: ChatCompletionRequest | EmbeddingRequest
) -> CallContext:
    return CallContext(
        request_id=request.state.request_id,
        endpoint=endpoint,
        request=body,
        headers=request.headers,
    )


async def chat_completions(request: Request) -> Response:
    ctx = _context(request, "chat", await parse_body(request, ChatCompletionRequest))
    result = await _gateway(request).handle(ctx)
    if isinstance(result, ChatCompletion):
        return JSONResponse(result, headers=ctx.response_headers)
    if isinstance(result, EmbeddingResponse):  # pragma: no cover - a pipeline bug
        raise TypeError("chat call produced an embedding response")
    # Pull the first chunk before answering, so that errors found while
    # preparing (bad parameters, context too long) get a real HTTP status.
    first = await anext(result)
    return sse_response(_sse(first, result), headers=ctx.response_headers)


async def _sse(
    first: ChatCompletionChunk, rest: AsyncIterator[ChatCompletionChunk]
) -> AsyncIterator[bytes]:
    yield sse_event(first)
    try:
        async for chunk in rest:
            yield sse_event(chunk)
    except GatehouseError as exc:
        # Headers are gone: the error travels as an SSE event, which the
        # official SDKs raise as an APIError instead of hanging.
        yield sse_event(exc.to_dict())
        return
    yield SSE_DONE


async def embeddings(request: Request) -> Response:
    ctx = _context(request, "embeddings", await parse_body(request, EmbeddingRequest))
    result = await _gateway(request).handle(ctx)
    return JSONResponse(result, headers=ctx.response_headers)


async def list_models(request: Request) -> Response:
    cards = _gateway(request).models()
    return JSONResponse({"object": "list", "data": [card.model_dump() for card in cards]})


async def get_model(request: Request) -> Response:
    return JSONResponse(_gateway(request).model(request.path_params["model"]))


ROUTES = [
    RouteSpec(
        "POST",
        "/v1/chat/completions",
        chat_completions,
        summary="Create a chat completion (JSON, or SSE when stream=true)",
        request_model=ChatCompletionRequest,
        response_model=ChatCompletion,
        stream_model=ChatCompletionChunk,
        tag="openai",
    ),
    RouteSpec(
        "POST",
        "/v1/embeddings",
        embeddings,
        summary="Create embeddings",
        request_model=EmbeddingRequest,
        response_model=EmbeddingResponse,
        tag="openai",
    ),
    RouteSpec(
        "GET", "/v1/models", list_models, summary="List models", response_model=None, tag="openai"
    ),
    RouteSpec(
        "GET",
        "/v1/models/{model:path}",
        get_model,
        summary="Describe one model",
        response_model=ModelCard,
        tag="openai",
    ),
]
