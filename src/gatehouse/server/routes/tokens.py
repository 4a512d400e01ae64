"""The token-counting routes: Anthropic's ``/v1/messages/count_tokens`` and the
Responses API's ``/v1/responses/input_tokens``.

Counting is free (no ledger record, like the upstream APIs' own counting
endpoints) but each call counts as a request against the caller's
requests-per-minute limits: a stored prompt it renders runs on shared threads.
Each answers in its own API's shape, plus ``method``: how the count was made
(see :mod:`gatehouse.gateway.counting`). The Anthropic route's errors are in
Anthropic's shape, like ``/v1/messages``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from gatehouse.catalog.tokens import CountMethod
from gatehouse.core.errors import GatehouseError
from gatehouse.faces import input_tokens as face
from gatehouse.gateway import Gateway
from gatehouse.gateway.counting import count_tokens
from gatehouse.server.http import JSONResponse, parse_body
from gatehouse.server.routes.admission import admit_request
from gatehouse.server.routes.anthropic import anthropic_error
from gatehouse.server.routes.prompts import render_reference
from gatehouse.server.routes.table import RouteSpec


class MessageTokensCount(BaseModel):
    input_tokens: int
    method: CountMethod


class InputTokenCount(BaseModel):
    object: Literal["response.input_tokens"] = "response.input_tokens"
    input_tokens: int
    method: CountMethod


async def messages_count_tokens(request: Request) -> Response:
    try:
        headers = await admit_request(request.app.state, request.state.principal)
        body = await parse_body(request, face.CountTokensRequest)
        count = await count_tokens(
            _gateway(request).registry, face.messages_to_openai(body), request.state.principal
        )
    except GatehouseError as exc:
        return anthropic_error(exc)
    return JSONResponse(
        MessageTokensCount(input_tokens=count.input_tokens, method=count.method), headers=headers
    )


async def responses_input_tokens(request: Request) -> Response:
    headers = await admit_request(request.app.state, request.state.principal)
    body = await parse_body(request, face.InputTokensRequest)
    chat = face.responses_to_openai(body)
    prompt = (body.model_extra or {}).get("prompt")
    if prompt is not None:  # a stored template: counted as the response would send it
        rendered = await render_reference(request.app.state, prompt, request.state.principal)
        chat = chat.model_copy(update={"messages": [*rendered.messages, *chat.messages]})
    count = await count_tokens(_gateway(request).registry, chat, request.state.principal)
    return JSONResponse(
        InputTokenCount(input_tokens=count.input_tokens, method=count.method), headers=headers
    )


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


ROUTES = [
    RouteSpec(
        "POST",
        "/v1/messages/count_tokens",
        messages_count_tokens,
        summary="Count a Messages API request's input tokens (Anthropic's shape)",
        request_model=face.CountTokensRequest,
        response_model=MessageTokensCount,
        tag="anthropic",
        scope="chat",
        error_shape=anthropic_error,
    ),
    RouteSpec(
        "POST",
        "/v1/responses/input_tokens",
        responses_input_tokens,
        summary="Count a Responses API request's input tokens",
        request_model=face.InputTokensRequest,
        response_model=InputTokenCount,
        tag="openai",
        scope="chat",
    ),
]
