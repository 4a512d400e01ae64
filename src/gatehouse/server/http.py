"""Small HTTP helpers shared by every route: JSON in, JSON or SSE out, errors."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gatehouse.core.errors import (
    GatehouseError,
    InvalidJSONError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
)
from gatehouse.core.validation import validation_error

M = TypeVar("M", bound=BaseModel)


SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, BaseModel):
            return content.model_dump_json().encode()
        return orjson.dumps(content)


def error_response(error: GatehouseError) -> JSONResponse:
    return JSONResponse(
        error.to_dict(), status_code=error.http_status, headers=error_headers(error)
    )


def error_headers(error: GatehouseError) -> dict[str, str]:
    """``Retry-After`` (whole seconds, at least 1) and the upstream's request id, when known."""
    headers = dict(error.headers)
    if error.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after)))
    if error.upstream_request_id:
        headers["x-upstream-request-id"] = error.upstream_request_id
    return headers


async def parse_body(request: Request, model: type[M]) -> M:
    """Read, decode and validate a JSON body into ``model``, or raise a 4xx error."""
    content_type = request.headers.get("content-type")
    if content_type is not None:
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise UnsupportedMediaTypeError(
                f"Unsupported content type '{media_type}'; send 'application/json'."
            )
    body = await request.body()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSONError(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationFailedError("The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def sse_response(
    events: AsyncIterator[bytes], headers: dict[str, str] | None = None
) -> StreamingResponse:
    return StreamingResponse(
        events, media_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})}
    )


def sse_event(payload: BaseModel | dict[str, Any]) -> bytes:
    data = (
        payload.model_dump_json().encode()
        if isinstance(payload, BaseModel)
        else orjson.dumps(payload)
    )
    return b"data: " + data + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
