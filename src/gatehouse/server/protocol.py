"""uvicorn's httptools protocol, with the limits on a request's head it lacks.

uvicorn (0.5x) closes a connection that sits idle *after* a response, but puts
no deadline on the request line and headers: a client that connects and sends
nothing, or trickles a header a byte at a time (slowloris), holds its
connection, and a file descriptor, for as long as it likes; and it keeps every
header line it is sent. Here each request's head must arrive within
``server.header_timeout_seconds`` of its first byte (or of the connection, for
the first request) and stay under :data:`MAX_HEAD_BYTES`; otherwise the client
gets an OpenAI-shaped 408 or 431 and the connection is closed. The body's own
deadline is the request middleware's (:mod:`gatehouse.server.middleware`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gatehouse.core.errors import GatehouseError, HeadersTooLargeError, RequestTimeoutError

# The request line and headers together, as the middleware counts them (which
# answers the same 431 for a head that fits here but not there).
MAX_HEAD_BYTES = 32 * 1024 + 8 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0
# After a refusal, how long what the client still sends is read and dropped
# before the connection closes: closing at once with unread input makes the
# kernel reset the connection, and the client may lose the answer with it.
LINGER_SECONDS = 2.0


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing a refused request."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` with a deadline and a size limit on each request's head.

    uvicorn takes it as its ``http`` protocol class; the timeout is bound with
    :func:`functools.partial`, which pickles to worker processes as it is."""

    def __init__(
        self, *args: Any, header_timeout: float = DEFAULT_HEADER_TIMEOUT, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.head_timer: asyncio.TimerHandle | None = None
        self.head_bytes = 0
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_bytes = 0
        if self.head_timer is None:
            self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if not self.refused:  # a refusal's _Refused surfaces as a parser error: answered already
            super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > MAX_HEAD_BYTES:
            self._refuse(
                HeadersTooLargeError(
                    f"The request line and headers exceed the limit of {MAX_HEAD_BYTES} bytes."
                )
            )
            raise _Refused

    def _arm(self) -> None:
        self._disarm()
        self.head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A response is still going out: a pipelined request's head is slow.
            self.cycle.keep_alive = False
            return
        self._refuse(
            RequestTimeoutError(
                f"The request headers did not arrive within {self.header_timeout:g} seconds."
            )
        )

    def _refuse(self, error: GatehouseError) -> None:
        """Answer ``error``, and close once the client has had time to read it
        (whatever it still sends meanwhile is dropped)."""
        self.refused = True
        self._disarm()
        body = orjson.dumps(error.to_dict())
        head = (
            f"HTTP/1.1 {error.http_status} {_REASONS[error.http_status]}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode("latin-1") + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()


_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}
