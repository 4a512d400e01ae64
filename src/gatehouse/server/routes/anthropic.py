"""The Anthropic-compatible route: ``POST /v1/messages``, for the official anthropic SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.errors import GatehouseError
from gatehouse.core.rerank import RerankResponse
from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, EmbeddingResponse
from gatehouse.faces import anthropic as face
from gatehouse.gateway import CallContext, Gateway
from gatehouse.server.http import JSONResponse, error_headers, parse_body, sse_response
from gatehouse.server.routes.table import RouteSpec


async def messages(request: Request) -> Response:
    try:
        body = await parse_body(request, face.MessagesRequest)
        ctx = CallContext(
            request_id=request.state.request_id,
            endpoint="chat",
            request=face.to_openai(body),
            headers=request.headers,
            principal=request.state.principal,
        )
        gateway: Gateway = request.app.state.gateway
        result = await gateway.handle(ctx)
        if isinstance(result, ChatCompletion):
            return JSONResponse(face.from_openai(result, body.model), headers=ctx.response_headers)
        if isinstance(result, EmbeddingResponse | RerankResponse):  # pragma: no cover - a bug
            raise TypeError("chat call produced an embedding response")
        first = await anext(result)
    except GatehouseError as exc:
        return anthropic_error(exc)
    return sse_response(_events(body.model, first, result), headers=ctx.response_headers)


def anthropic_error(exc: GatehouseError) -> Response:
    return JSONResponse(
        face.error_body(exc), status_code=exc.http_status, headers=error_headers(exc)
    )


async def _events(
    model: str, first: ChatCompletionChunk, rest: AsyncIterator[ChatCompletionChunk]
) -> AsyncIterator[bytes]:
    translator = face.StreamTranslator(model)
    for data in translator.feed(first):
        yield data
    try:
        async for chunk in rest:
            for data in translator.feed(chunk):
                yield data
    except GatehouseError as exc:
        yield face.event("error", face.error_body(exc))
        return
    for data in translator.close():
        yield data


ROUTES = [
    RouteSpec(
        "POST",
        "/v1/messages",
        messages,
        summary="Create a message (Anthropic Messages API; SSE when stream=true)",
        request_model=face.MessagesRequest,
        tag="anthropic",
        scope="chat",
        error_shape=anthropic_error,
    ),
]
