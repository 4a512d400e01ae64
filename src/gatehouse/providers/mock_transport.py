"""A transport that answers by calling a function: providers driven without a socket.

::

    def handler(request: UpstreamRequest) -> UpstreamResponse:
        assert request.headers["authorization"] == "Bearer sk-test"
        return UpstreamResponse(200, {}, orjson.dumps(ANSWER))

    provider = OpenAICompatProvider(config, info=info, api_key="sk-test",
                                    transport=MockTransport(handler))

The handler may be a coroutine function. To fail as a real transport does, it
raises ``TimeoutError`` or ``ConnectionError``, or, for a stream cut midway,
answers with :func:`streamed` told to raise after its last line.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from gatehouse.providers.transport import UpstreamRequest, UpstreamResponse

Handler = Callable[[UpstreamRequest], UpstreamResponse | Awaitable[UpstreamResponse]]


class MockTransport:
    """Answers each request with ``handler(request)``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def handle(self, request: UpstreamRequest) -> UpstreamResponse:
        answer = self.handler(request)
        response = await answer if inspect.isawaitable(answer) else answer
        # Names in lower case, as the contract wants: so that a handler may
        # write "Retry-After" as a server would.
        response.headers = {name.lower(): value for name, value in response.headers.items()}
        if response.release is None and isinstance(response.lines, AsyncGenerator):
            # A stream left early runs the generator's clean-up at once.
            response.release = response.lines.aclose
        return response


async def streamed(body: bytes, *, then: BaseException | None = None) -> AsyncIterator[bytes]:
    """``body`` line by line, as a streamed response gives it; then raise ``then``, if given."""
    for line in body.splitlines(keepends=True):
        yield line
    if then is not None:
        raise then
