"""The lean HTTP/1.1 client's bound on a response, against a real socket server.

A body past ``max_response_bytes`` is refused while it arrives, whatever says
where it ends (a ``Content-Length``, chunks, or the end of the connection), and
so is a small gzip body that unpacks past it. Each time the connection is
closed and its slot freed: a pool of one connection serves the next request.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable

import pytest

from gatehouse.providers.http1 import Http1Pool
from gatehouse.providers.transport import ResponseTooLargeError

from .test_http1 import Server, freed_after_refusal, ok, run

LIMIT = 64 * 1024


async def _declared_huge(
    body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bytes:
    # Says 2 GiB and sends a little: refused on the headers, nothing more is awaited.
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2147483648\r\n\r\n" + b"x" * 1024


async def _chunked(
    body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bytes:
    piece = b"x" * 8192
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 64 + b"0\r\n\r\n"


async def _until_closed(
    body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    # No length, no chunks: the body ends with the connection (HTTP/1.0 style).
    writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    for _ in range(64):
        writer.write(b"x" * 8192)
        await writer.drain()
    return None


async def _gzip_bomb(
    body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bytes:
    packed = gzip.compress(b"\0" * (64 * LIMIT))  # about 4 KiB on the wire
    assert len(packed) < LIMIT
    extra = b"Content-Encoding: gzip\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(packed), extra) + packed


@pytest.mark.parametrize(
    "answer",
    [_declared_huge, _chunked, _until_closed, _gzip_bomb],
    ids=["content_length", "chunked", "until_closed", "gzip"],
)
def test_a_response_past_the_bound_is_refused_and_its_connection_freed(
    answer: Callable[..., object],
) -> None:
    async def scenario(server: Server, pool: Callable[..., Http1Pool]) -> None:
        server.answers = [answer]  # type: ignore[list-item]
        client = pool(max_connections=1, max_response_bytes=LIMIT)
        with pytest.raises(ResponseTooLargeError) as caught:
            await client.request("POST", "/", b"big")
        assert caught.value.limit == LIMIT
        await freed_after_refusal(server, client)

    run(scenario)


def test_a_response_of_exactly_the_bound_is_whole() -> None:
    async def scenario(server: Server, pool: Callable[..., Http1Pool]) -> None:
        body = b"y" * LIMIT
        packed = gzip.compress(body)
        server.answers = [ok(body), ok(packed, b"Content-Encoding: gzip\r\n")]
        client = pool(max_response_bytes=LIMIT)
        assert (await client.request("POST", "/", b"a")).body == body
        assert (await client.request("POST", "/", b"b")).body == body
        assert server.connections == 1  # kept alive throughout
        await client.aclose()

    run(scenario)
