"""A lean HTTP/1.1 client for the hot path: pooled keep-alive connections to one origin.

aiohttp is general (cookies, redirects, tracing hooks, multipart, a timeout
context per request) and spends about 45 µs of CPU on every request that
gatehouse does not need; measured against the same upstream this client
spends about 8. It does one thing: send a request with a complete body over
a pooled connection and read the whole response, parsed by httptools (the
parser uvicorn uses). Non-streamed calls (chat completions, embeddings) go
through it; streams stay on aiohttp.

Behaviour:

- At most ``max_connections`` connections per origin; a caller past that waits
  for one to be released (first come, first served).
- ``connect`` bounds connecting, ``read`` the longest silence while a
  response is awaited, ``total`` the whole call, pool wait included.
- A connection idle for longer than ``idle_timeout`` is not reused. A reused
  connection that turns out to have been closed by the server before any byte
  of the answer arrived (the server's keep-alive ran out while it sat in the
  pool) is replaced and the request sent once more, as urllib3 does; any other
  failure is the caller's to retry, since the request may have been processed.
- A cancelled or timed-out call closes its connection, so the upstream sees
  the client go.
- A response is at most ``max_response_bytes``, as sent and once decompressed:
  a larger ``Content-Length`` is refused when the headers arrive, a body that
  grows past it as it arrives; either raises :class:`ResponseTooLargeError`
  and closes the connection, so a 2 GiB answer is never held in memory.
  The status line and headers are at most :data:`MAX_RESPONSE_HEAD_BYTES`
  (headers without end are a :class:`ConnectionClosedError`, the connection
  closed), whatever ``max_response_bytes`` is.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import Iterable
from typing import cast
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from gatehouse import __version__
from gatehouse.core.config import DEFAULT_MAX_RESPONSE_BYTES
from gatehouse.providers.transport import ResponseTooLargeError, UpstreamResponse

_USER_AGENT = f"gatehouse/{__version__}"
# A response's status line and headers, at most: far past any upstream's (a few KiB).
MAX_RESPONSE_HEAD_BYTES = 64 * 1024


def encode_headers(headers: Iterable[tuple[str, str]]) -> bytes:
    """Header lines as sent on the wire, each ending in CRLF."""
    return "".join(f"{k}: {v}\r\n" for k, v in headers).encode("latin-1")


class ConnectionClosedError(ConnectionError):
    """The upstream closed the connection (or sent bytes that are not HTTP)
    before the response was complete."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection, carrying one request at a time."""

    def __init__(self, pool: Http1Pool) -> None:
        self._pool = pool
        self._limit = pool.max_response_bytes
        self._size = 0  # body bytes of the current response so far
        self._head: int | None = None  # bytes of its head so far; None once complete
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._framed = False  # the response says where it ends (length or chunks)
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.keep_alive = True
        self.received = False  # any byte of the current response has arrived
        self.uses = 0
        self.last_activity = 0.0
        self.idle_since = 0.0

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return  # given up on (too large): what was still buffered is not parsed
        self.received = True
        self.last_activity = time.monotonic()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionClosedError(f"sent an invalid HTTP response: {exc}"))
            self.close()
            return
        if self._head is not None and not self.closed:
            # The head has not ended within ``data``: all of it was head.
            self._head += len(data)
            if self._head > MAX_RESPONSE_HEAD_BYTES:
                self._fail(
                    ConnectionClosedError(
                        f"sent a response head of more than {MAX_RESPONSE_HEAD_BYTES} bytes"
                    )
                )
                self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool._forget(self)
        if self._waiter is None or self._waiter.done():
            return
        if self.received and not self._framed and self._parser.get_status_code():
            # A body delimited by the end of the connection (HTTP/1.0 style).
            self._complete()
        else:
            self._fail(ConnectionClosedError("closed the connection"))

    # -- httptools callbacks --

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._head = None
        names = {name.lower(): value for name, value in self._headers}
        self._framed = "content-length" in names or "transfer-encoding" in names
        length = names.get("content-length", "")
        # Refused before a byte of the body is read (httptools checked it is a number).
        if length.strip().isdigit() and int(length) > self._limit:
            self._too_large()

    def on_body(self, body: bytes) -> None:
        if self.closed:
            return  # the rest of a chunk already fed to the parser
        self._size += len(body)
        if self._size > self._limit:
            self._too_large()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self._parser.should_keep_alive()
        self._complete()

    # -- requests --

    async def request(self, data: bytes, read_timeout: float, deadline: float) -> UpstreamResponse:
        if self.closed or self._transport is None or self._transport.is_closing():
            # Closed while it sat in the pool (or on its way to this caller).
            raise ConnectionClosedError("closed the connection")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[UpstreamResponse] = loop.create_future()
        self._waiter = waiter
        self._headers, self._body = [], []
        self._size = 0
        self._head = 0
        self.received = False
        self.uses += 1
        self.last_activity = time.monotonic()
        self._timer = loop.call_at(
            min(loop.time() + read_timeout, deadline), self._check_timeout, read_timeout, deadline
        )
        self._transport.write(data)
        try:
            return await waiter
        finally:
            self._timer.cancel()
            self._waiter = None

    def _check_timeout(self, read_timeout: float, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        silent_until = self.last_activity + read_timeout
        now = time.monotonic()
        if now < silent_until and loop.time() < deadline:
            # Bytes arrived meanwhile: wait again from the last of them.
            wake = min(loop.time() + (silent_until - now), deadline)
            self._timer = loop.call_at(wake, self._check_timeout, read_timeout, deadline)
            return
        self._fail(TimeoutError("the upstream took too long to answer"))
        self.close()

    def _complete(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        headers = CIMultiDict(self._headers)
        body = b"".join(self._body)
        encoding = headers.get("content-encoding", "identity").lower()
        if encoding in ("gzip", "deflate"):
            # Bounded like the body as sent: a small gzip may unpack to gigabytes.
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else 0)
            try:
                body = inflate.decompress(body, self._limit + 1)
            except zlib.error as exc:
                waiter.set_exception(
                    ConnectionClosedError(f"sent an undecodable {encoding} body: {exc}")
                )
                return
            if len(body) > self._limit:
                waiter.set_exception(ResponseTooLargeError(self._limit))
                self.close()
                return
        elif encoding != "identity":
            waiter.set_exception(
                ConnectionClosedError(f"sent an unsupported content-encoding {encoding}")
            )
            return
        waiter.set_result(
            UpstreamResponse(self._parser.get_status_code(), CIMultiDictProxy(headers), body)
        )

    def _too_large(self) -> None:
        """Give up on a response past the limit; the connection cannot carry another."""
        self._body = []
        self._fail(ResponseTooLargeError(self._limit))
        self.close()

    def _fail(self, error: BaseException) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class Http1Pool:
    """Keep-alive connections to one origin (``scheme://host[:port]``)."""

    def __init__(
        self,
        origin: str,
        *,
        max_connections: int,
        connect_timeout: float,
        read_timeout: float,
        total_timeout: float,
        headers: Iterable[tuple[str, str]] = (),
        idle_timeout: float = 30.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {origin!r}")
        default_port = 443 if parts.scheme == "https" else 80
        self._host = parts.hostname
        self._port = parts.port or default_port
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        host = self._host if self._port == default_port else f"{self._host}:{self._port}"
        fixed = [("Host", host), ("User-Agent", _USER_AGENT), *headers]
        self._fixed_headers = encode_headers(fixed)
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._total_timeout = total_timeout
        self._idle_timeout = idle_timeout
        self.max_response_bytes = max_response_bytes
        self._idle: deque[_Connection] = deque()
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._open = 0
        self._connections: set[_Connection] = set()

    async def request(
        self,
        method: str,
        target: str,
        body: bytes,
        headers: Iterable[tuple[str, str]] | bytes = (),
    ) -> UpstreamResponse:
        """Send ``method target`` with ``body``; the complete response.

        ``headers`` add to the pool's; as bytes, they are header lines already
        encoded by :func:`encode_headers`, which a caller sending the same set
        on every call does once."""
        if not isinstance(headers, bytes):
            headers = encode_headers(headers)
        head = f"{method} {target} HTTP/1.1\r\n".encode("latin-1")
        length = b"Content-Length: %d\r\n\r\n" % len(body)
        data = b"".join((head, self._fixed_headers, headers, length, body))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._total_timeout
        for attempt in range(2):
            connection = await self._acquire(deadline)
            reused = connection.uses > 0
            try:
                response = await connection.request(data, self._read_timeout, deadline)
            except ConnectionClosedError:
                connection.close()
                if reused and not connection.received and attempt == 0:
                    continue  # the server had let the idle connection go
                raise
            except BaseException:
                connection.close()  # cancelled or timed out mid-call: the upstream sees us go
                raise
            if connection.keep_alive and not connection.closed:
                self._release(connection)
            else:
                connection.close()
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(
                    ConnectionClosedError("is being disconnected: gatehouse is shutting down")
                )
        self._waiters.clear()
        for connection in list(self._connections):
            connection.close()
        self._idle.clear()

    # -- the pool --

    async def _acquire(self, deadline: float) -> _Connection:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: warmest
            if not connection.closed and now - connection.idle_since < self._idle_timeout:
                return connection
            connection.close()
        if self._open < self._max:
            return await self._connect(deadline)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                handed = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection (or a free slot) just as we gave up: pass it on.
                self._hand_over(waiter.result())
            raise
        if handed is None:
            return await self._connect(deadline)
        return handed

    async def _connect(self, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        self._open += 1
        try:
            timeout = min(self._connect_timeout, max(deadline - loop.time(), 0.0))
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self),
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
        except BaseException:
            self._open -= 1
            self._hand_over(None)  # the slot is free again
            raise
        self._connections.add(connection)
        return connection

    def _release(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        self._hand_over(connection)

    def _hand_over(self, connection: _Connection | None) -> None:
        """Give a connection, or a free slot (``None``), to the longest waiter."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if connection is not None:
            self._idle.append(connection)

    def _forget(self, connection: _Connection) -> None:
        """A connection has closed: its slot is free."""
        if connection in self._connections:
            self._connections.discard(connection)
            self._open -= 1
            self._hand_over(None)
