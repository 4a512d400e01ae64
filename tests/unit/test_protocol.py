"""The guarded HTTP protocol over a recording transport: deadlines checked by one
sweeper, and a whole response written once.

The protocol is driven as uvicorn drives it (``connection_made``,
``data_received``), with a transport that records what it is asked to write.
The deadlines are short, and each test waits for the outcome with a generous
bound: no timing decides a pass.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from gatehouse.server.protocol import GuardedHttpToolsProtocol

App = Callable[[Any, Any, Any], Awaitable[None]]
PATIENCE = 10.0  # seconds: only ever a bound on waiting for something that should happen


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.eof = False
        self.aborted = False
        self.buffered = 0  # what get_write_buffer_size reports

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )


def connect(
    app: App,
    *,
    header_timeout: float = 60.0,
    body_timeout: float = 60.0,
    write_timeout: float = 60.0,
    keep_alive: int = 60,
    server: ServerState | None = None,
) -> tuple[GuardedHttpToolsProtocol, RecordingTransport]:
    config = Config(app=app, timeout_keep_alive=keep_alive, lifespan="off")
    config.load()
    # As uvicorn builds it: the timeouts bound with partial, the rest its own.
    protocol = functools.partial(
        GuardedHttpToolsProtocol,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        write_timeout=write_timeout,
    )(config=config, server_state=server or ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(PATIENCE):
        while not condition():  # noqa: ASYNC110 - the protocol sets plain attributes, no event
            await asyncio.sleep(0.01)


def wrote(transport: RecordingTransport, writes: int) -> Callable[[], bool]:
    return lambda: len(transport.writes) >= writes or transport.closed


async def json_app(scope: Any, receive: Any, send: Any) -> None:
    message = await receive()
    body = json.dumps({"echo": message["body"].decode()}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def request(body: bytes = b"hi", method: bytes = b"POST") -> bytes:
    return method + b" /x HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(body) + body


def status_and_error(raw: bytes) -> tuple[int, str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)["error"]["message"]


async def test_a_json_answer_leaves_in_one_write_head_and_body_together() -> None:
    protocol, transport = connect(json_app)
    protocol.data_received(request(b"hi"))
    await until(lambda: bool(transport.writes))
    await asyncio.sleep(0.05)  # anything written apart would be here by now
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"content-length: %d" % len(body) in head
    assert json.loads(body) == {"echo": "hi"}


async def test_a_streamed_answer_sends_its_head_before_the_body_exists() -> None:
    release = asyncio.Event()

    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await release.wait()
        await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": False})

    protocol, transport = connect(streaming)
    protocol.data_received(request())
    await until(lambda: bool(transport.writes))
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK")
    assert b"transfer-encoding: chunked" in transport.writes[0]
    release.set()
    await until(lambda: len(transport.writes) == 2)
    assert b"data: x" in transport.writes[1]


async def test_a_head_request_gets_its_head_without_a_body() -> None:
    async def head_app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
        )
        await send({"type": "http.response.body", "body": b""})

    protocol, transport = connect(head_app)
    protocol.data_received(b"HEAD /x HTTP/1.1\r\nhost: x\r\n\r\n")
    await until(lambda: bool(transport.writes))
    assert transport.writes == [transport.writes[0]]
    assert transport.writes[0].endswith(b"\r\n\r\n")
    assert b"content-length: 5" in transport.writes[0]


async def test_an_app_failing_after_its_head_still_sends_the_head_then_closes() -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
        )
        raise RuntimeError("broken after the head")

    protocol, transport = connect(failing)
    protocol.data_received(request())
    await until(lambda: transport.closed)
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK")


async def test_a_connection_that_sends_nothing_gets_408_and_is_closed() -> None:
    protocol, transport = connect(json_app, header_timeout=0.2)
    await until(lambda: transport.eof)
    status, message = status_and_error(transport.writes[0])
    assert status == 408
    assert "headers" in message
    protocol.connection_lost(None)


async def test_a_body_that_does_not_arrive_gets_408_and_the_app_sees_a_disconnect() -> None:
    seen: list[dict[str, Any]] = []

    async def reader(scope: Any, receive: Any, send: Any) -> None:
        while True:  # the whole body, as a route reads it
            seen.append(await receive())
            if seen[-1]["type"] != "http.request" or not seen[-1]["more_body"]:
                return

    protocol, transport = connect(reader, body_timeout=0.2)
    protocol.data_received(b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
    await until(lambda: transport.eof)
    status, message = status_and_error(transport.writes[0])
    assert status == 408
    assert "body" in message
    await until(lambda: bool(seen) and seen[-1]["type"] == "http.disconnect")
    protocol.data_received(b"defghij")  # too late: dropped, the answer stands
    assert len(transport.writes) == 1


async def test_a_body_within_its_deadline_is_served() -> None:
    protocol, transport = connect(json_app, header_timeout=0.2, body_timeout=0.5)
    protocol.data_received(b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nab")
    protocol.data_received(b"cd")
    await until(lambda: bool(transport.writes))
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert json.loads(body) == {"echo": "abcd"}


async def test_an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() -> None:
    protocol, transport = connect(json_app, keep_alive=1)
    for answered in range(1, 4):  # requests in a row: each resets the idle wait
        protocol.data_received(request())
        await until(wrote(transport, answered))
        assert not transport.closed
    await until(lambda: transport.closed)
    assert not transport.eof  # closed as idle, not refused


async def test_a_sweeper_serves_the_connections_of_its_server_and_forgets_closed_ones() -> None:
    server = ServerState()
    first, first_transport = connect(json_app, header_timeout=0.2, server=server)
    first.connection_lost(None)
    second, second_transport = connect(json_app, header_timeout=0.2, server=server)
    assert first._sweeper is second._sweeper
    await until(lambda: second_transport.eof)
    assert not first_transport.writes  # gone before its deadline: nothing written to it
    second.connection_lost(None)


async def test_blank_lines_after_a_response_get_the_heads_deadline() -> None:
    protocol, transport = connect(json_app, header_timeout=0.2, keep_alive=3600)
    protocol.data_received(request())
    await until(lambda: bool(transport.writes))
    protocol.data_received(b"\r\n")  # begins no request, but ends the keep-alive wait
    await until(lambda: transport.eof)
    status, message = status_and_error(transport.writes[-1])
    assert status == 408
    assert "headers" in message


async def test_a_connection_whose_check_fails_is_dropped_and_the_others_deadlines_still_fire(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = ServerState()
    broken = [connect(json_app, header_timeout=60.0, server=server) for _ in range(2)]
    for protocol, _ in broken:

        def fail(now: float) -> None:
            raise RuntimeError("a check that fails")

        monkeypatch.setattr(protocol, "check_deadlines", fail)
    healthy, healthy_transport = connect(json_app, header_timeout=0.2, server=server)
    with caplog.at_level(logging.ERROR, logger="gatehouse.server"):
        # Both broken connections fail on the first sweep; the healthy one's
        # deadline comes sweeps later, so the timer went on after the failures.
        await until(lambda: healthy_transport.eof)
    status, _ = status_and_error(healthy_transport.writes[0])
    assert status == 408
    assert all(transport.aborted for _, transport in broken)
    assert all(protocol not in healthy._sweeper.connections for protocol, _ in broken)
    failures = [r for r in caplog.records if "deadlines failed" in r.getMessage()]
    assert len(failures) == 1  # rate-limited: one line for both
    healthy.connection_lost(None)


async def test_a_pipelined_body_is_not_timed_out_while_the_response_before_it_goes_out() -> None:
    release = asyncio.Event()
    read: list[bytes] = []
    served: list[bytes] = []

    async def slow_first(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        read.append(body)
        if not served:
            await release.wait()  # a long model call, longer than the body timeout
        served.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    protocol, transport = connect(slow_first, header_timeout=60.0, body_timeout=0.2)
    second_head = b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 6\r\n\r\n"
    protocol.data_received(request(b"first"))
    await until(lambda: bool(read))  # the first app has its body, and asks for nothing more
    protocol.data_received(second_head)
    assert protocol.flow.read_paused  # uvicorn reads no more until the first is answered
    # Several body timeouts pass with reading paused: the client is not to blame.
    await asyncio.sleep(1.0)
    assert not transport.eof
    assert not transport.writes
    release.set()
    await until(lambda: not protocol.flow.read_paused)
    protocol.data_received(b"second")  # the body, once the server reads again
    await until(lambda: len(served) == 2)
    await until(lambda: sum(w.count(b"HTTP/1.1 200") for w in transport.writes) == 2)
    assert served == [b"first", b"second"]
    assert not transport.eof
    assert all(b"408" not in w for w in transport.writes)


async def test_a_pipelined_body_still_has_its_deadline_once_reading_resumes() -> None:
    async def quick(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    protocol, transport = connect(quick, header_timeout=60.0, body_timeout=0.2)
    protocol.data_received(
        request(b"first") + b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 6\r\n\r\nse"
    )
    await until(lambda: transport.eof)  # the rest of the body never comes
    status, message = status_and_error(transport.writes[-1])
    assert status == 408
    assert "body" in message
    protocol.connection_lost(None)


async def test_a_response_the_client_does_not_read_is_aborted_after_the_write_timeout() -> None:
    sent: list[str] = []

    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": True})
            sent.append("chunk")
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        sent.append("end")

    protocol, transport = connect(streaming, write_timeout=0.2)
    protocol.pause_writing()  # the buffer past its high-water mark: the client is not reading
    protocol.data_received(request())
    await until(lambda: transport.aborted)
    assert not sent  # the app waited to write all along
    protocol.connection_lost(ConnectionResetError())  # as the loop reports the abort
    await until(lambda: not protocol.tasks)  # the app's task ends: the client left
    assert sent == ["chunk", "chunk", "chunk", "end"]  # uvicorn drops what it sends now


async def test_a_buffer_that_drains_keeps_its_connection() -> None:
    protocol, transport = connect(json_app, write_timeout=3600.0)
    protocol.pause_writing()
    protocol.resume_writing()  # drained: no deadline left to run
    protocol.check_deadlines(protocol.loop.time() + 7200.0)
    assert not transport.aborted
    protocol.data_received(request())
    await until(lambda: bool(transport.writes))
    assert not transport.closed


async def test_a_slow_reader_that_makes_progress_keeps_its_connection() -> None:
    # The checks are driven with chosen times: the sweeper's own (an hour's
    # timeout) never acts here.
    protocol, transport = connect(json_app, write_timeout=3600.0)
    transport.buffered = 1 << 20
    protocol.pause_writing()
    start = protocol.write_paused_since
    assert start is not None
    for step in range(1, 9):  # eight timeouts in all, the buffer shrinking in each
        transport.buffered -= 64 * 1024
        protocol.check_deadlines(start + step * 3000.0)
    assert not transport.aborted
    protocol.check_deadlines(start + 8 * 3000.0 + 3599.0)  # no progress, within the timeout
    assert not transport.aborted
    protocol.check_deadlines(start + 8 * 3000.0 + 3601.0)  # no progress past it
    assert transport.aborted


async def test_a_pipelined_body_that_times_out_is_answered_after_the_response_before_it() -> None:
    second_sent = asyncio.Event()
    release = asyncio.Event()

    async def streaming_first(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await second_sent.wait()
        # Asking for more input (as a disconnect listener does) lets uvicorn read
        # again: the pipelined body's deadline runs while this stream goes on.
        listener = asyncio.ensure_future(receive())
        await release.wait()
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": False})
        await listener

    protocol, transport = connect(streaming_first, body_timeout=0.2)
    protocol.data_received(request(b"first"))
    await until(lambda: len(transport.writes) >= 2)
    protocol.data_received(b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
    second_sent.set()
    await until(lambda: protocol.refused)  # timed out: the client never sends the rest
    assert all(b"408" not in w for w in transport.writes)  # not written into the stream
    release.set()
    await until(lambda: transport.eof)
    assert b"data: 2" in transport.writes[-2]
    status, message = status_and_error(transport.writes[-1])
    assert status == 408
    assert "body" in message
    protocol.connection_lost(None)
