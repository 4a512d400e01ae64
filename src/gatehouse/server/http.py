"""Small HTTP helpers shared by every route: JSON in, JSON or SSE out, errors."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Send

from gatehouse.core.errors import (
    GatehouseError,
    InvalidJSONError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
)
from gatehouse.core.validation import validation_error

M = TypeVar("M", bound=BaseModel)


SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def to_json(model: BaseModel) -> bytes:
    """``model`` as JSON bytes, straight from pydantic's serializer (no str round trip)."""
    return model.__pydantic_serializer__.to_json(model)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, BaseModel):
            return to_json(content)
        return orjson.dumps(content)


async def read_body(receive: Receive) -> bytes:
    """The whole request body from raw ASGI ``receive``."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body  # the usual case: one message, no copy
    parts = [body]
    while message.get("more_body", False):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def send_json(send: Send, body: bytes, headers: Mapping[str, str], status: int = 200) -> None:
    """Answer a raw ASGI request with a JSON body in two messages."""
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw.extend((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


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
    return decode_body(request.headers.get("content-type"), await request.body(), model)


def decode_body(content_type: str | None, body: bytes, model: type[M]) -> M:
    """Decode and validate a JSON body into ``model``, or raise a 4xx error."""
    return validate_body(decode_json(content_type, body), model)


def validate_body(data: dict[str, Any], model: type[M]) -> M:
    """Validate a decoded JSON body into ``model``, or raise a 400 naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def decode_json(content_type: str | None, body: bytes) -> dict[str, Any]:
    """A JSON object body, or a 4xx error (wrong media type, bad JSON, not an object)."""
    if content_type is not None:
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise UnsupportedMediaTypeError(
                f"Unsupported content type '{media_type}'; send 'application/json'."
            )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSONError(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationFailedError("The request body must be a JSON object.")
    return data


def sse_response(
    events: AsyncIterator[bytes], headers: dict[str, str] | None = None
) -> StreamingResponse:
    return StreamingResponse(
        events, media_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})}
    )


async def send_sse(
    receive: Receive, send: Send, events: AsyncIterator[bytes], headers: Mapping[str, str]
) -> None:
    """Stream server-sent events over raw ASGI, and stop the moment the client goes.

    Does what Starlette's ``StreamingResponse`` does for a server on ASGI spec
    2.3 (uvicorn's), without its task group: one watcher task waits for
    ``http.disconnect`` and cancels the streaming, which closes ``events`` and
    so the upstream call behind it. That task group costs a visible part of
    the time to first byte.
    """
    streamer = asyncio.current_task()
    assert streamer is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        streamer.cancel()

    raw = [(b"content-type", b"text/event-stream; charset=utf-8")]
    raw.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in SSE_HEADERS.items())
    raw.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
    watcher = asyncio.create_task(watch())
    try:
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        async for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except asyncio.CancelledError:
        if not gone:
            raise
        streamer.uncancel()  # the client left: a normal end, not a failure
    finally:
        watcher.cancel()
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


async def sse_stream(
    first: M, rest: AsyncIterator[M], *, exclude_none: bool = False
) -> AsyncIterator[bytes]:
    """``first`` and then ``rest`` as server-sent events, ending with ``[DONE]``.

    The caller pulled ``first`` before answering, so that errors found while
    preparing got a real HTTP status. Later the headers are gone: an error
    travels as an SSE event (the official SDKs raise it as an APIError instead
    of hanging). ``exclude_none`` leaves unset fields out of each event."""

    def encode(event: M) -> bytes:
        return sse_event(event.model_dump(exclude_none=True) if exclude_none else event)

    yield encode(first)
    try:
        async for event in rest:
            yield encode(event)
    except GatehouseError as exc:
        yield sse_event(exc.to_dict())
        return
    yield SSE_DONE


def sse_event(payload: BaseModel | dict[str, Any]) -> bytes:
    data = to_json(payload) if isinstance(payload, BaseModel) else orjson.dumps(payload)
    return b"data: " + data + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
