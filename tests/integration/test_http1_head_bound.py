"""The lean HTTP/1.1 client's bound on a response's head, against a real socket server.

``max_response_bytes`` bounds a body; the status line and headers before it
are bounded too (:data:`gatehouse.providers.http1.MAX_RESPONSE_HEAD_BYTES`), so
an upstream that sends headers without end, or one header without end, is
refused while they arrive instead of being held in memory whole. The
connection is closed and its slot freed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gatehouse.providers.http1 import MAX_RESPONSE_HEAD_BYTES, ConnectionClosedError, Http1Pool

from .test_http1 import Server, freed_after_refusal, run

SENT = 8 * 1024 * 1024  # what the upstream would send before its head ends: far past the bound


async def _many_headers(
    body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bytes:
    writer.write(b"HTTP/1.1 200 OK\r\n")
    line = b"x-pad: " + b"a" * 8185 + b"\r\n"
    for _ in range(SENT // len(line)):
        writer.write(line)
        await writer.drain()
    return b"Content-Length: 2\r\n\r\n{}"


async def _one_endless_header(
    body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bytes:
    writer.write(b"HTTP/1.1 200 OK\r\nx-pad: ")
    for _ in range(SENT // 8192):
        writer.write(b"a" * 8192)
        await writer.drain()
    return b"\r\nContent-Length: 2\r\n\r\n{}"


@pytest.mark.parametrize(
    "answer", [_many_headers, _one_endless_header], ids=["many_headers", "one_header"]
)
def test_a_head_past_the_bound_is_refused_and_its_connection_freed(
    answer: Callable[..., object],
) -> None:
    async def scenario(server: Server, pool: Callable[..., Http1Pool]) -> None:
        server.answers = [answer]  # type: ignore[list-item]
        client = pool(max_connections=1)
        with pytest.raises(ConnectionClosedError, match=str(MAX_RESPONSE_HEAD_BYTES)):
            await client.request("POST", "/", b"headers")
        await freed_after_refusal(server, client)

    run(scenario)


def test_an_ordinary_head_is_read() -> None:
    async def scenario(server: Server, pool: Callable[..., Http1Pool]) -> None:
        # Many ordinary headers (an upstream's rate-limit and tracing ones), well within.
        headers = b"".join(b"x-h%d: %s\r\n" % (n, b"v" * 100) for n in range(100))
        server.answers = [b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Length: 2\r\n\r\n{}"]
        client = pool(max_connections=1)
        response = await client.request("POST", "/", b"x")
        assert (response.status, response.body) == (200, b"{}")
        assert response.headers["x-h99"] == "v" * 100
        await client.aclose()

    run(scenario)
