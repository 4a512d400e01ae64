"""The HTTP conversation with an upstream, written once on top of any transport.

A provider translates (``to_wire`` / ``from_wire``); an :class:`Upstream`
speaks to the upstream for it: JSON in and out, a non-2xx answer classified
from its status and structured body (:mod:`gatehouse.providers.upstream_errors`),
the ``data:`` payloads of a server-sent event stream, the first-token timeout,
the bound on an answer's size, and transport failures turned into gatehouse
errors that say whether the call may be tried again. A streamed call may,
until its first event is yielded; after that the client has part of an
answer, and a retry would repeat it.

No socket here: the bytes go through a :class:`~gatehouse.providers.transport.Transport`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping
from contextvars import ContextVar
from typing import Any

import orjson

from gatehouse.core.config import DEFAULT_MAX_RESPONSE_BYTES, DeploymentConfig
from gatehouse.core.errors import (
    GatehouseError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gatehouse.providers.http_transport import HTTPTransport
from gatehouse.providers.transport import (
    ResponseTooLargeError,
    TracedHeaders,
    Transport,
    UpstreamRequest,
)
from gatehouse.providers.upstream_errors import Dialect, classify

# The W3C trace context (``traceparent``, ``tracestate``) to send with the
# upstream calls made in this context: the gateway sets it around each call
# (gatehouse.gateway.tracing, gatehouse.gateway.trace_context); None sends none.
TRACE_CONTEXT: ContextVar[Mapping[str, str] | None] = ContextVar(
    "gatehouse_trace_context", default=None
)


class Upstream:
    """One deployment's upstream: ``headers`` go with every call, through ``transport``."""

    def __init__(
        self,
        transport: Transport,
        *,
        deployment: str,
        dialect: Dialect,
        headers: Mapping[str, str],
        first_token_timeout: float,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        owned: HTTPTransport | None = None,
    ) -> None:
        """``owned`` is a transport this upstream made, and so closes in :meth:`aclose`.

        An answer of more than ``max_response_bytes`` (a whole body, an error's
        body, or all the lines of a stream together) is an :class:`UpstreamError`.
        """
        self.transport = transport
        self.deployment = deployment
        self._dialect = dialect
        # One mapping, built once and never changed: transports may cache by it.
        self._headers = {"content-type": "application/json", **headers}
        self._first_token = first_token_timeout
        self._max_bytes = max_response_bytes
        self._owned = owned

    @classmethod
    def for_deployment(
        cls,
        config: DeploymentConfig,
        *,
        deployment: str,
        dialect: Dialect,
        headers: Mapping[str, str],
        transport: Transport | None = None,
    ) -> Upstream:
        """The upstream of one configured deployment; ``headers`` add to the configured ones.

        Without a ``transport``, an :class:`HTTPTransport` built from the
        config, closed by :meth:`aclose`; a transport passed in is the caller's
        to close."""
        owned = None
        if transport is None:
            transport = owned = HTTPTransport.for_deployment(config)
        return cls(
            transport,
            deployment=deployment,
            dialect=dialect,
            headers={**config.headers, **headers},
            first_token_timeout=config.timeout.first_token,
            max_response_bytes=config.max_response_bytes,
            owned=owned,
        )

    async def aclose(self) -> None:
        if self._owned is not None:
            await self._owned.aclose()

    async def post_json(self, url: str, body: Mapping[str, Any]) -> tuple[Any, Mapping[str, str]]:
        """POST ``body``; the decoded JSON answer and its headers, or a classified error."""
        request = UpstreamRequest("POST", url, self._call_headers(), orjson.dumps(body))
        try:
            response = await self.transport.handle(request)
        except (TimeoutError, ConnectionError) as exc:
            raise self._unreachable(exc, "") from exc
        except ResponseTooLargeError:
            raise self._too_large() from None
        if len(response.body) > self._max_bytes:  # a transport that does not bound it
            raise self._too_large()
        if response.status >= 400:
            raise self._error(response.status, response.body, response.headers)
        try:
            return orjson.loads(response.body), response.headers
        except orjson.JSONDecodeError:
            raise UpstreamError(f"Upstream {self.deployment} answered with invalid JSON") from None

    async def stream_events(self, url: str, body: Mapping[str, Any]) -> AsyncGenerator[bytes, None]:
        """POST ``body`` and yield the ``data:`` payload of each server-sent event.

        The first event must arrive within the first-token timeout; an upstream
        that closes the stream early or resets the connection raises an
        ``UpstreamError`` (retryable only if nothing was yielded yet).
        """
        request = UpstreamRequest("POST", url, self._call_headers(), orjson.dumps(body), True)
        try:
            response = await self.transport.handle(request)
        except (TimeoutError, ConnectionError) as exc:
            raise self._unreachable(exc, " before the first token") from exc
        yielded = False
        try:
            if response.status >= 400:
                error_body = await response.aread(self._max_bytes)
                raise self._error(response.status, error_body, response.headers)
            lines = response.lines if response.lines is not None else _split(response.body)
            # Left early, ``events`` is dropped unfinished: it holds nothing
            # that ``response.aclose()`` below does not release.
            events = _sse_data(lines, self._max_bytes)
            async with asyncio.timeout(self._first_token):
                first = await anext(events, None)
            if first is None:
                raise UpstreamError(f"Upstream {self.deployment} sent an empty stream")
            yielded = True
            yield first
            async for data in events:
                yield data
        except GatehouseError as exc:
            if yielded:
                exc.retryable = False
            raise
        except ResponseTooLargeError:
            raise self._too_large(" of its stream" if yielded else "") from None
        except TimeoutError as exc:
            error = UpstreamTimeoutError(
                f"Upstream {self.deployment} timed out"
                + (" mid-stream" if yielded else " before the first token")
            )
            error.retryable = not yielded
            raise error from exc
        except ConnectionError as exc:
            message = f"Upstream {self.deployment} ended the stream early: {_reason(exc)}"
            if yielded:
                raise UpstreamError(message) from exc
            early = UpstreamConnectionError(message)
            early.retryable = True
            raise early from exc
        finally:
            await response.aclose()

    def _call_headers(self) -> Mapping[str, str]:
        """The headers of one call: the deployment's, plus the trace context if any."""
        trace = TRACE_CONTEXT.get()
        return self._headers if trace is None else TracedHeaders(self._headers, trace)

    def _error(self, status: int, body: bytes, headers: Mapping[str, str]) -> GatehouseError:
        return classify(status, body, headers, dialect=self._dialect, deployment=self.deployment)

    def _too_large(self, what: str = "") -> UpstreamError:
        """An answer past the bound: it came (and may be billed), so it is not
        tried again on this group; a fallback group is still tried."""
        return UpstreamError(
            f"Upstream {self.deployment} answered with more than {self._max_bytes} bytes{what} "
            "(its deployment's max_response_bytes)",
            code="upstream_response_too_large",
        )

    def _unreachable(self, exc: TimeoutError | ConnectionError, when: str) -> GatehouseError:
        """The error for a call that got no answer at all: always worth another try."""
        error: GatehouseError
        if isinstance(exc, TimeoutError):
            error = UpstreamTimeoutError(f"Upstream {self.deployment} timed out{when}")
        else:
            error = UpstreamConnectionError(
                f"Upstream {self.deployment} is unreachable: {_reason(exc)}"
            )
        error.retryable = True
        return error


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def _split(body: bytes) -> AsyncIterator[bytes]:
    """A whole body as lines: a transport may answer a streamed request at once."""
    for line in body.splitlines(keepends=True):
        yield line


async def _sse_data(lines: AsyncIterable[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    """The ``data:`` payloads of an SSE stream, multi-line data joined, ``[DONE]`` ending it.

    A stream that ends without ``[DONE]`` just ends: Anthropic and Gemini
    streams end by closing, so the translations detect truncation by their own
    end events. Once its lines together pass ``limit`` bytes, the stream ends
    in :class:`ResponseTooLargeError`: an event is bounded by the transport,
    all of them by this.
    """
    buffer: list[bytes] = []
    size = 0
    async for raw in lines:
        size += len(raw)
        if size > limit:
            raise ResponseTooLargeError(limit)
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
