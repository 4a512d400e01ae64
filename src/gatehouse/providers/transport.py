"""HTTP transport to upstreams: one keep-alive connection pool per deployment.

Separate from the translation modules, which are pure. The session is created
lazily inside the running event loop (never at import or construction time)
and closed by :meth:`HTTPTransport.aclose` at shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from gatehouse.core.config import DeploymentConfig, TimeoutConfig
from gatehouse.core.errors import (
    GatehouseError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gatehouse.providers.http1 import ConnectionClosedError, Http1Pool
from gatehouse.providers.upstream_errors import Dialect, classify


class HTTPTransport:
    def __init__(
        self,
        *,
        deployment: str,
        dialect: Dialect,
        timeout: TimeoutConfig,
        max_connections: int,
        headers: Mapping[str, str],
    ) -> None:
        self.deployment = deployment
        self._dialect = dialect
        self._timeout = timeout
        self._max_connections = max_connections
        self._headers = {"content-type": "application/json", **headers}
        self._session: aiohttp.ClientSession | None = None
        self._pools: dict[str, Http1Pool] = {}
        self._targets: dict[str, tuple[Http1Pool, str]] = {}

    @classmethod
    def for_deployment(
        cls,
        config: DeploymentConfig,
        *,
        deployment: str,
        dialect: Dialect,
        headers: Mapping[str, str],
    ) -> HTTPTransport:
        """The transport of one configured deployment; ``headers`` add to the configured ones."""
        return cls(
            deployment=deployment,
            dialect=dialect,
            timeout=config.timeout,
            max_connections=config.max_connections,
            headers={**config.headers, **headers},
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
                headers=self._headers,
                # Upstream cookies (a load balancer's affinity cookie, say)
                # must not travel from one client's call to another's; nor
                # should every call pay for filtering a jar.
                cookie_jar=aiohttp.DummyCookieJar(),
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
                auto_decompress=True,
                read_bufsize=1 << 20,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()
        self._targets.clear()

    async def post_json(
        self, url: str, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> tuple[Any, Mapping[str, str]]:
        """POST ``body``; the decoded JSON answer and its headers, or a classified error.

        Goes through the lean keep-alive client (:mod:`gatehouse.providers.http1`):
        this is every non-streamed call, the gateway's hottest path."""
        pool, target = self._target(url)
        try:
            response = await pool.request(
                "POST", target, orjson.dumps(body), () if headers is None else headers.items()
            )
        except BaseException as exc:
            raise self._transport_error(exc) from exc
        if response.status >= 400:
            raise self._error(response.status, response.body, response.headers)
        try:
            return orjson.loads(response.body), response.headers
        except orjson.JSONDecodeError:
            raise UpstreamError(f"Upstream {self.deployment} answered with invalid JSON") from None

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
                    headers=self._headers.items(),
                )
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            found = self._targets[url] = (pool, target)
        return found

    async def stream_events(
        self,
        url: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[bytes]:
        """POST ``body`` and yield the ``data:`` payload of each server-sent event.

        The first event must arrive within the first-token timeout; an upstream
        that closes the stream early or resets the connection raises an
        ``UpstreamError`` (retryable only if nothing was yielded yet).
        """
        yielded = False
        try:
            async with self._client().post(
                url, data=orjson.dumps(body), headers=headers
            ) as response:
                if response.status >= 400:
                    raise self._error(response.status, await response.read(), response.headers)
                lines = _sse_data(response.content)
                async with asyncio.timeout(self._timeout.first_token):
                    first = await anext(lines, None)
                if first is None:
                    raise UpstreamError(f"Upstream {self.deployment} sent an empty stream")
                yielded = True
                yield first
                async for data in lines:
                    yield data
        except GatehouseError as exc:
            if yielded:
                exc.retryable = False
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            error = UpstreamTimeoutError(
                f"Upstream {self.deployment} timed out"
                + (" mid-stream" if yielded else " before the first token")
            )
            error.retryable = not yielded
            raise error from exc
        except (aiohttp.ClientError, ConnectionError) as exc:
            if not yielded:
                raise self._transport_error(exc) from exc
            raise UpstreamError(
                f"Upstream {self.deployment} ended the stream early: {type(exc).__name__}"
            ) from exc

    def _error(self, status: int, body: bytes, headers: Mapping[str, str]) -> GatehouseError:
        return classify(status, body, headers, dialect=self._dialect, deployment=self.deployment)

    def _transport_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
            return exc
        error: GatehouseError
        if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
            error = UpstreamTimeoutError(f"Upstream {self.deployment} timed out")
        elif isinstance(exc, ConnectionClosedError):
            error = UpstreamConnectionError(f"Upstream {self.deployment} {exc}")
        elif isinstance(exc, aiohttp.ClientError | ConnectionError | OSError):
            error = UpstreamConnectionError(
                f"Upstream {self.deployment} is unreachable: {type(exc).__name__}"
            )
        else:
            return exc
        error.retryable = True
        return error


async def _sse_data(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The ``data:`` payloads of an SSE stream, multi-line data joined, ``[DONE]`` ending it.

    Raises ``UpstreamError`` if the stream ends without its terminator (``[DONE]``
    for OpenAI) only when the caller treats that as an error: Anthropic and
    Gemini streams end by closing, so truncation is detected by their own
    end events in the translation layer.
    """
    buffer: list[bytes] = []
    async for raw in content:
        line = raw.rstrip(b"\r\n")
        if not line:
            if buffer:
                data = b"\n".join(buffer)
                buffer = []
                if data == b"[DONE]":
                    return
                yield data
            continue
        if line.startswith(b"data:"):
            buffer.append(line[5:].lstrip(b" "))
    if buffer:
        data = b"\n".join(buffer)
        if data != b"[DONE]":
            yield data
