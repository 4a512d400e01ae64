"""The default transport: keep-alive connection pools to an upstream's origins.

Whole answers (every non-streamed call, the gateway's hottest path) go through
the lean HTTP/1.1 client of :mod:`gatehouse.providers.http1`; streams through
aiohttp. The aiohttp session and the pools are created lazily inside the
running event loop (never at import or construction time) and closed by
:meth:`HTTPTransport.aclose` at shutdown.

aiohttp's and the pool's exceptions become the plain ``TimeoutError`` and
``ConnectionError`` of the transport contract (:mod:`gatehouse.providers.transport`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.http_exceptions import LineTooLong

from gatehouse.core.config import DEFAULT_MAX_RESPONSE_BYTES, DeploymentConfig, TimeoutConfig
from gatehouse.providers.http1 import ConnectionClosedError, Http1Pool, encode_headers
from gatehouse.providers.transport import TracedHeaders, UpstreamRequest, UpstreamResponse

# aiohttp's read buffer for streams; it refuses a line (an SSE event) of more than twice this.
READ_BUFSIZE = 1 << 20


class HTTPTransport:
    """Sends requests over pooled keep-alive connections, at most
    ``max_connections`` per origin, within ``timeout`` (connect, read, total;
    the first-token timeout is the caller's). A whole answer past
    ``max_response_bytes`` is refused while it is read; a stream's bytes are
    counted by its reader (:class:`gatehouse.providers.upstream.Upstream`)."""

    def __init__(
        self,
        *,
        timeout: TimeoutConfig,
        max_connections: int,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._timeout = timeout
        self._max_connections = max_connections
        self._max_response_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None
        self._pools: dict[str, Http1Pool] = {}
        self._targets: dict[str, tuple[Http1Pool, str]] = {}
        # The gateway sends one unchanging headers mapping with every call of a
        # provider: encode it once, not on each call.
        self._encoded: tuple[Mapping[str, str], bytes] | None = None

    @classmethod
    def for_deployment(cls, config: DeploymentConfig) -> HTTPTransport:
        """The transport of one configured deployment."""
        return cls(
            timeout=config.timeout,
            max_connections=config.max_connections,
            max_response_bytes=config.max_response_bytes,
        )

    async def handle(self, request: UpstreamRequest) -> UpstreamResponse:
        if request.stream:
            return await self._stream(request)
        pool, target = self._target(request.url)
        headers = request.headers
        trace = b""
        if isinstance(headers, TracedHeaders) and not headers.trace.keys() & headers.base.keys():
            # The provider's headers as cached, then this call's trace context.
            trace = encode_headers(headers.trace.items())
            headers = headers.base
        encoded = self._encoded
        if encoded is None or encoded[0] is not headers:
            encoded = self._encoded = (headers, encode_headers(headers.items()))
        try:
            return await pool.request(request.method, target, request.body, encoded[1] + trace)
        except (TimeoutError, ConnectionClosedError):
            raise
        except OSError as exc:  # refused, DNS, TLS, ...
            raise ConnectionError(type(exc).__name__) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()
        self._targets.clear()

    def _target(self, url: str) -> tuple[Http1Pool, str]:
        """The pool for ``url``'s origin and the request target within it."""
        found = self._targets.get(url)
        if found is None:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}"
            pool = self._pools.get(origin)
            if pool is None:
                pool = self._pools[origin] = Http1Pool(
                    origin,
                    max_connections=self._max_connections,
                    connect_timeout=self._timeout.connect,
                    read_timeout=self._timeout.read,
                    total_timeout=self._timeout.total,
                    max_response_bytes=self._max_response_bytes,
                )
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            found = self._targets[url] = (pool, target)
        return found

    async def _stream(self, request: UpstreamRequest) -> UpstreamResponse:
        try:
            response = await self._client().request(
                request.method, request.url, data=request.body, headers=request.headers
            )
        except TimeoutError:  # aiohttp's ServerTimeoutError among them
            raise
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectionError(type(exc).__name__) from exc
        return UpstreamResponse(
            response.status,
            response.headers,
            lines=_Lines(response.content),
            release=partial(_release, response),
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, keepalive_timeout=60, ttl_dns_cache=300
                ),
                timeout=aiohttp.ClientTimeout(
                    total=self._timeout.total,
                    sock_connect=self._timeout.connect,
                    sock_read=self._timeout.read,
                ),
                # Upstream cookies (a load balancer's affinity cookie, say)
                # must not travel from one client's call to another's; nor
                # should every call pay for filtering a jar.
                cookie_jar=aiohttp.DummyCookieJar(),
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
                auto_decompress=True,
                read_bufsize=READ_BUFSIZE,
            )
        return self._session


class _Lines:
    """A streamed body line by line, with aiohttp's exceptions made plain.

    In place of aiohttp's own line iterator, not around it: one step per line,
    as many as without the translation."""

    __slots__ = ("_readline",)

    def __init__(self, content: aiohttp.StreamReader) -> None:
        self._readline = content.readline

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> bytes:
        try:
            line = await self._readline()
        except aiohttp.EofStream:
            raise StopAsyncIteration from None
        except TimeoutError:
            raise
        except (aiohttp.ClientError, OSError) as exc:  # reset, or closed before the end
            raise ConnectionError(type(exc).__name__) from exc
        except LineTooLong as exc:  # a line past aiohttp's limit (twice read_bufsize)
            raise ConnectionError(f"a line of more than {2 * READ_BUFSIZE} bytes") from exc
        if not line:
            raise StopAsyncIteration
        return line


async def _release(response: aiohttp.ClientResponse) -> None:
    # What ``async with response`` does on the way out: the connection goes
    # back to the pool if the body was read to its end, else it is closed.
    response.release()
    await response.wait_for_close()
