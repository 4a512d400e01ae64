"""The lean HTTP/1.1 client against a real socket server, on uvloop as in production."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop

from gatehouse.providers.http1 import ConnectionClosedError, Http1Pool

# (request body, the connection) -> the raw response, or None to hang up.
Answer = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bytes | None]]


def ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


async def freed_after_refusal(server: Server, client: Http1Pool) -> None:
    """The refused answer's connection was closed, and the pool's one slot serves the
    next request on a new connection."""
    await asyncio.wait_for(server.disconnected.wait(), 5)
    response = await client.request("POST", "/", b"small")
    assert (response.status, response.body) == (200, b'{"ok":true}')
    assert server.connections == 2
    await client.aclose()


async def hang_on(body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Never answer; return once the client hangs up."""
    await reader.read()


@dataclass
class Server:
    """Answers each request with the next scripted answer (default: 200 + JSON)."""

    answers: list[Answer | bytes] = field(default_factory=list)
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    close_after_each: bool = False
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                self.requests.append(body)
                answer = self.answers.pop(0) if self.answers else ok()
                raw = answer if isinstance(answer, bytes) else await answer(body, reader, writer)
                if raw is None:
                    break
                writer.write(raw)
                await writer.drain()
                if self.close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.disconnected.set()
            writer.close()


def run(scenario: Callable[[Server, Callable[..., Http1Pool]], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        server = Server()
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        server.port = listener.sockets[0].getsockname()[1]

        def pool(**options: Any) -> Http1Pool:
            settings = {
                "max_connections": 4,
                "connect_timeout": 2.0,
                "read_timeout": 2.0,
                "total_timeout": 5.0,
            }
            settings.update(options)
            return Http1Pool(f"http://127.0.0.1:{server.port}", **settings)

        try:
            await asyncio.wait_for(scenario(server, pool), 20)
        finally:
            listener.close()

    uvloop.run(main())


def test_connections_are_kept_alive_and_reused() -> None:
    async def scenario(server: Server, pool: Callable[..., Http1Pool]) -> None:
        client = pool()
        for n in range(3):
            response = await client.request("POST", "/v1/x", b'{"n":%d}' % n, [("X-Test", "1")])
            assert (response.status, response.body) == (200, b'{"ok":true}')
        assert server.connections == 1
        assert server.requests == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
        await client.aclose()

    run(scenario)


def test_callers_past_the_connection_limit_wait_their_turn() -> None:
    async def scenario(server: Server, pool: Callable[..., Http1Pool]) -> None:
        async def slow(
            body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> bytes:
            await asyncio.sleep(0.02)
            return ok(body)

        server.answers = [slow] * 12
        client = pool(max_connections=2)
        bodies = [b"%d" % n for n in range(12)]
        responses = await asyncio.gather(*(client.request("POST", "/", b) for b in bodies))
        assert [r.body for r in responses] == bodies
        assert server.connections == 2
        await client.aclose()

    run(scenario)


def test_a_connection_the_server_let_go_while_idle_is_replaced_and_the_request_resent() -> None:
    async def scenario(server: Server, pool: Callable[..., Http1Pool]) -> None:
        server.close_after_each = True  # as a server whose keep-alive ran out
        client = pool()
        assert (await client.request("POST", "/", b"a")).status == 200
        await asyncio.sleep(0.05)
        assert (await client.request("POST", "/", b"b")).body == b'{"ok":true}'
        assert server.requests == [b"a", b"b"]
        assert server.connections == 2
        await client.aclose()

    run(scenario)


def test_a_fresh_connection_dropped_before_answering_is_an_error_not_a_resend() -> None:
    async def scenario(server: Server, pool: Callable[..., Http1Pool]) -> None:
        async def drop(
            body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            return None

        server.answers = [drop]
        client = pool()
        with pytest.raises(ConnectionClosedError, match="closed the connection"):
            await client.request("POST", "/", b"x")
        assert server.requests == [b"x"]  # sent once: it may have been processed
        assert (await client.request("POST", "/", b"y")).status == 200  # the slot was freed
        await client.aclose()

    run(scenario)


def test_silence_past_the_read_timeout_fails_and_closes_the_connection() -> None:
    async def scenario(server: Server, pool: Callable[..., Http1Pool]) -> None:
        server.answers = [hang_on]
        client = pool(read_timeout=0.2)
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await client.request("POST", "/", b"x")
        assert asyncio.get_running_loop().time() - started < 1.0
        await asyncio.wait_for(server.disconnected.wait(), 2)  # the upstream saw us go
        await client.aclose()

    run(scenario)


def test_a_slow_but_steady_answer_is_not_a_read_timeout() -> None:
    async def scenario(server: Server, pool: Callable[..., Http1Pool]) -> None:
        async def trickle(
            body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> bytes:
            # 0.75 s in all, never silent for 0.3 s.
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for n in range(5):
                await asyncio.sleep(0.15)
                writer.write(b"1\r\n%d\r\n" % n)
            return b"0\r\n\r\n"

        server.answers = [trickle]
        client = pool(read_timeout=0.3)
        assert (await client.request("POST", "/", b"x")).body == b"01234"
        await client.aclose()

    run(scenario)


def test_cancelling_a_call_closes_its_connection() -> None:
    async def scenario(server: Server, pool: Callable[..., Http1Pool]) -> None:
        server.answers = [hang_on]
        client = pool()
        task = asyncio.ensure_future(client.request("POST", "/", b"x"))
        await asyncio.sleep(0.2)  # the request is with the server
        assert server.requests == [b"x"]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(server.disconnected.wait(), 2)
        await client.aclose()

    run(scenario)


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"abcde",
        ),
        (ok(gzip.compress(b'{"z":1}'), b"Content-Encoding: gzip\r\n"), b'{"z":1}'),
    ],
    ids=["chunked", "gzip"],
)
def test_chunked_and_compressed_bodies_are_decoded(raw: bytes, body: bytes) -> None:
    async def scenario(server: Server, pool: Callable[..., Http1Pool]) -> None:
        server.answers = [raw]
        client = pool()
        assert (await client.request("POST", "/", b"x")).body == body
        await client.aclose()

    run(scenario)


def test_connection_close_is_honoured_and_a_close_delimited_body_is_complete() -> None:
    async def scenario(server: Server, pool: Callable[..., Http1Pool]) -> None:
        server.answers = [ok(b"first", b"Connection: close\r\n")]
        client = pool()
        response = await client.request("POST", "/", b"x")
        assert (response.body, response.headers["connection"]) == (b"first", "close")
        assert (await client.request("POST", "/", b"y")).status == 200
        assert server.connections == 2  # the closed one was not reused

        server.answers = [b"HTTP/1.0 200 OK\r\n\r\nuntil the end"]
        server.close_after_each = True
        fresh = pool()
        assert (await fresh.request("POST", "/", b"z")).body == b"until the end"
        await client.aclose()
        await fresh.aclose()

    run(scenario)
