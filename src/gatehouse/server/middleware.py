"""The outermost ASGI layer: request ids, security headers, header and body size
limits, the last-resort 500, and ``connection: close`` while the process drains.

Written as raw ASGI rather than framework middleware because it wraps every
request, the hot path included, and must cost next to nothing.
"""

from __future__ import annotations

import errno
import logging
import re
import socket
import sqlite3
from collections.abc import Mapping

import sqlalchemy.exc
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatehouse.core.errors import (
    GatehouseError,
    HeadersTooLargeError,
    InternalError,
    RequestTooLargeError,
    ServiceUnavailableError,
)
from gatehouse.core.ids import request_id as new_request_id
from gatehouse.server.http import error_response
from gatehouse.server.lifecycle import Lifecycle
from gatehouse.server.routes.table import ErrorShape, RawEndpoint

log = logging.getLogger("gatehouse.server")


# OSErrors that say a dependency cannot be used now (a full or failing disk, a
# network path down); others (a missing file, say) are gatehouse's own 500s.
_UNAVAILABLE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EHOSTUNREACH, errno.ENETUNREACH}
)


def _dependency_down(exc: BaseException) -> bool:
    """Whether ``exc`` says a dependency cannot be used right now, not that gatehouse
    is wrong: the database unreachable or gone away, a disk full under the outbox.
    Such a request is refused with a retryable 503 (docs/reliability.md), not a 500."""
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return True  # refused, reset or timed out on the way to a dependency
    if isinstance(exc, OSError):
        return exc.errno in _UNAVAILABLE_ERRNOS
    return isinstance(
        exc,
        sqlite3.OperationalError  # "database or disk is full", I/O errors
        | sqlalchemy.exc.OperationalError
        | sqlalchemy.exc.InterfaceError,
    ) or (isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated)


_CLIENT_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")

MAX_HEADER_BYTES = 32 * 1024

# Sent on every response. An API answers no browser navigation: nothing of it
# may be framed, sniffed into another type, or leak the referrer.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


class RequestContextMiddleware:
    """Request ids, security headers, size limits and the OpenAI-shaped last resort.

    The deadlines on a request's head and body are the protocol's
    (:mod:`gatehouse.server.protocol`), which checks them without a timer per
    request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        lifecycle: Lifecycle | None = None,
        error_shapes: Mapping[str, ErrorShape] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.lifecycle = lifecycle
        # Routes whose errors are not in OpenAI's shape (the Anthropic ones in
        # Anthropic's, the dashboard's as HTML pages), by path: this layer's
        # errors (sizes, failures) answer in the route's shape.
        self.error_shapes: Mapping[str, ErrorShape] = error_shapes or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # One pass over the headers: their size, the declared body length and
        # a client's request id.
        size, declared, rid = 0, None, None
        for name, value in scope.get("headers", ()):
            size += len(name) + len(value)
            if name == b"content-length":
                declared = value
            elif name == b"x-request-id" and rid is None and _CLIENT_ID.fullmatch(value):
                rid = value.decode()
        if rid is None:
            rid = new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        added = [(b"x-request-id", rid.encode()), *SECURITY_HEADERS]
        if self.lifecycle is not None and self.lifecycle.draining:
            # Shutting down: keep-alive clients (and proxies' pools) take their
            # next request elsewhere rather than find this connection closed.
            added.append((b"connection", b"close"))
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *added]
            await send(message)

        try:
            if size > MAX_HEADER_BYTES:
                raise HeadersTooLargeError(
                    f"The request headers exceed the limit of {MAX_HEADER_BYTES} bytes."
                )
            length = _length(declared)
            if length is not None and length > self.max_body_bytes:
                raise _too_large(self.max_body_bytes)
            # A declared length within the limit bounds the body already (the
            # HTTP parser delivers no more than it); only a chunked body is counted.
            await self.app(
                scope, receive if length is not None else self._limited(receive), send_with_id
            )
        except GatehouseError as exc:
            if started:
                raise
            await self._error_response(scope, exc)(scope, receive, send_with_id)
        except Exception as exc:
            if started:
                log.exception("unhandled error in request %s", rid)
                raise
            error: GatehouseError
            if _dependency_down(exc):
                log.warning("request %s: a dependency is unavailable: %r", rid, exc)
                error = ServiceUnavailableError(
                    f"A storage dependency is unavailable; try again shortly (request {rid})."
                )
            else:
                log.exception("unhandled error in request %s", rid)
                error = InternalError(f"The server had an error processing request {rid}.")
            await self._error_response(scope, error)(scope, receive, send_with_id)

    def _error_response(self, scope: Scope, error: GatehouseError) -> Response:
        """``error`` in the shape of the route at the request's path (OpenAI's by default)."""
        return self.error_shapes.get(scope["path"], error_response)(error)

    def _limited(self, receive: Receive) -> Receive:
        """``receive`` with the body's size limit, for a body of undeclared length."""
        limit, seen, complete = self.max_body_bytes, 0, False

        async def limited_receive() -> Message:
            nonlocal seen, complete
            message = await receive()
            if complete or message["type"] != "http.request":
                complete = True  # the body is in, or the client is gone
                return message
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _too_large(limit)
            complete = not message.get("more_body", False)
            return message

        return limited_receive


def _too_large(limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(f"The request body exceeds the limit of {limit} bytes.")


def _length(declared: bytes | None) -> int | None:
    """A ``Content-Length`` value as a number; None when absent or not a number."""
    if declared is None:
        return None
    try:
        return int(declared)
    except ValueError:
        return None


class HotRoutes:
    """Dispatches the hot POST routes straight to their raw ASGI endpoints.

    Sits inside :class:`RequestContextMiddleware` (request id, body limit,
    error mapping) and in front of Starlette's exception layer and router,
    whose per-request work shows in a profile of the chat route. Every other
    request, and any other method on these paths, goes on to Starlette.
    """

    def __init__(self, app: ASGIApp, *, routes: Mapping[str, RawEndpoint]) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.routes.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)
