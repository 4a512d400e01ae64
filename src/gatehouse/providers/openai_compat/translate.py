"""OpenAI wire format <-> gatehouse's canonical types. Pure functions, no I/O.

gatehouse's canonical types are the OpenAI format, so the mapping is nearly the
identity: the public model name becomes the upstream's, gatehouse-only fields
are dropped, and what comes back is validated into typed models (unknown
fields pass through untouched).
"""

from __future__ import annotations

from typing import Any

import orjson

from gatehouse.core.errors import UpstreamError
from gatehouse.core.reasoning import effort_for_budget, thinking_budget
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)

# Request fields that steer gatehouse itself and must not reach an upstream.
GATEHOUSE_FIELDS = frozenset({"cache"})


def chat_to_wire(request: ChatCompletionRequest, upstream_model: str) -> dict[str, Any]:
    """The request body for ``POST /chat/completions``: what the client set, re-targeted."""
    body = request.model_dump(exclude_unset=True, exclude_none=True, exclude=set(GATEHOUSE_FIELDS))
    body["model"] = upstream_model
    # Anthropic's thinking budget is not an OpenAI parameter: an upstream that
    # speaks OpenAI gets it as the effort of docs/translation.md's table (and a
    # disabled one as no effort at all: not every upstream knows "none").
    budget = thinking_budget(body.pop("thinking", None))
    if budget and "reasoning_effort" not in body:
        body["reasoning_effort"] = effort_for_budget(budget)
    if request.stream:
        # Always ask for usage: metering needs it even when the client did not.
        body["stream_options"] = {**body.get("stream_options", {}), "include_usage": True}
    return body


def chat_from_wire(data: Any) -> ChatCompletion:
    try:
        return ChatCompletion.model_validate(data)
    except ValueError as exc:
        raise UpstreamError(f"Upstream answered with a malformed chat completion: {exc}") from None


def chunk_from_wire(data: bytes) -> ChatCompletionChunk:
    """One ``data:`` payload of the stream; an in-band ``{"error": ...}`` raises."""
    try:
        return ChatCompletionChunk.model_validate_json(data)
    except ValueError:
        pass
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError("Upstream sent a malformed stream event") from None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        raise UpstreamError(f"Upstream failed mid-stream: {error.get('message', 'unknown error')}")
    raise UpstreamError("Upstream sent a stream event that is not a chat completion chunk")


def embeddings_to_wire(request: EmbeddingRequest, upstream_model: str) -> dict[str, Any]:
    body = request.model_dump(exclude_unset=True, exclude_none=True, exclude=set(GATEHOUSE_FIELDS))
    body["model"] = upstream_model
    return body


def embeddings_from_wire(data: Any) -> EmbeddingResponse:
    try:
        return EmbeddingResponse.model_validate(data)
    except ValueError as exc:
        raise UpstreamError(f"Upstream answered with malformed embeddings: {exc}") from None
