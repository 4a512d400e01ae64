"""The transport contract: one request in, one response out, nothing else.

Everything a provider says to its upstream goes through a :class:`Transport`,
an object with a single method, ``handle``. It knows sockets, pools and
timeouts, and nothing of JSON, SSE or error bodies: that protocol logic is
written once in :class:`gatehouse.providers.upstream.Upstream`, on top of any
transport. Two transports ship:

- :class:`gatehouse.providers.http_transport.HTTPTransport`, the default
  (pooled HTTP/1.1 for whole answers, aiohttp for streams);
- :class:`gatehouse.providers.mock_transport.MockTransport`, which answers by
  calling a function: tests (and users) drive a provider end to end without a
  socket.

A transport answers any status (a 429 is a response, not an exception) and
raises only for a failure to get one, as plain built-in exceptions::

    TimeoutError           connecting, a silence or the whole call took too long
    ConnectionError        unreachable, refused, reset, closed, or not HTTP
    ResponseTooLargeError  a whole answer past the transport's bound (its connection closed)

also while a streamed body is being read. The message, or the class name
when it is empty, ends up after "Upstream <deployment> is unreachable: " (or
"... ended the stream early: " once the answer has begun). Anything else it
raises passes through as a bug.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class UpstreamRequest:
    """One call to an upstream.

    ``headers`` is the whole set the upstream must see (content type,
    credentials, the deployment's configured headers); a transport adds only
    what HTTP itself needs (Host, Content-Length). The gateway sends the same
    mapping object with every call of a provider and never changes it, so a
    transport may cache what it derives from it by identity; a call that
    carries W3C trace context gets a :class:`TracedHeaders` instead, that
    mapping plus ``traceparent`` (and ``tracestate``).
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""
    stream: bool = False  # answer with ``lines`` as they arrive, not the whole ``body``


@dataclass(slots=True)
class UpstreamResponse:
    """What the upstream answered.

    ``headers`` is looked up with lower-case names: a case-insensitive mapping
    (``multidict.CIMultiDictProxy``), or one whose names are lower case.

    The answer to a request without ``stream`` is the whole ``body``. The
    answer to a streamed request is ``lines``: the body one line at a time as
    it arrives, each with its line ending (the last may lack one). Whoever
    holds a streamed response calls :meth:`aclose` when done with it, whether
    it read it to the end or not, which calls ``release``: what frees the
    connection, or closes ``lines`` if that needs closing.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    lines: AsyncIterator[bytes] | None = None
    release: Callable[[], Awaitable[None]] | None = None

    async def aread(self, limit: int | None = None) -> bytes:
        """The whole body, reading what remains of a streamed one; past ``limit``
        bytes, :class:`ResponseTooLargeError` (the rest is left unread)."""
        if self.lines is not None:
            lines, self.lines = self.lines, None
            read: list[bytes] = []
            size = 0
            async for line in lines:
                size += len(line)
                if limit is not None and size > limit:
                    raise ResponseTooLargeError(limit)
                read.append(line)
            self.body = b"".join(read)
        if limit is not None and len(self.body) > limit:
            raise ResponseTooLargeError(limit)
        return self.body

    async def aclose(self) -> None:
        """Stop reading and free what the response holds; safe to call twice."""
        release, self.release = self.release, None
        if release is not None:
            await release()


class ResponseTooLargeError(Exception):
    """An upstream's answer is larger than the ``limit`` it may have (bytes)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit} bytes")
        self.limit = limit


class TracedHeaders(dict[str, str]):
    """One call's headers: a provider's unchanging ``base`` plus the call's
    ``trace`` context (``traceparent``, ``tracestate``).

    A plain dict of all of them to any transport; one that caches by the
    identity of ``base`` adds the few ``trace`` headers to what it cached.
    """

    __slots__ = ("base", "trace")

    def __init__(self, base: Mapping[str, str], trace: Mapping[str, str]) -> None:
        super().__init__(base)
        self.update(trace)
        self.base = base
        self.trace = trace


class Transport(Protocol):
    """Sends a request to an upstream and returns its response, whatever its status."""

    async def handle(self, request: UpstreamRequest) -> UpstreamResponse: ...
