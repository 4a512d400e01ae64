"""Slow and oversized clients against a real gatehouse process, over raw sockets.

Slowloris-style clients (a connection that sends nothing, headers trickled a
byte at a time, a body trickled) are answered 408 and disconnected once
``server.header_timeout_seconds`` / ``body_timeout_seconds`` pass; oversized
heads and bodies get 431 and 413; and while many slow clients hold
connections, an ordinary request is served. Bounds here are generous
deadlines for success, never timings that decide a pass.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import write_config

pytestmark = pytest.mark.integration

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
MAX_BODY = 64 * 1024
DEADLINE = 30.0  # for anything that should happen "promptly"


@pytest.fixture(scope="module")
def server(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("slow")
    limits = f"""
server:
  header_timeout_seconds: {HEADER_TIMEOUT}
  body_timeout_seconds: {BODY_TIMEOUT}
  max_body_bytes: {MAX_BODY}
"""
    config = write_config(root / "gatehouse.yaml", upstream, limits)
    running = start_server(root / "data", config=config)
    yield running
    stop_server(running)


def _connect(server: RunningServer) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=DEADLINE)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(DEADLINE)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _trickle(sock: socket.socket, data: bytes, pause: float, stop: threading.Event) -> None:
    """Send ``data`` a byte at a time until the server closes or ``stop`` is set."""
    for byte in data:
        if stop.wait(pause):
            return
        try:
            sock.send(bytes([byte]))
        except OSError:
            return  # closed by the server: what a slow client should expect


def _error(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    error: dict[str, object] = json.loads(body)["error"]
    return status, error


def _chat(server: RunningServer) -> httpx.Response:
    return httpx.post(
        server.base_url + "/v1/chat/completions",
        json={"model": "up", "messages": [{"role": "user", "content": "still here"}]},
        timeout=DEADLINE,
    )


def test_a_connection_that_sends_nothing_is_answered_408_and_closed(server: RunningServer) -> None:
    with _connect(server) as sock:
        status, error = _error(_read_all(sock))
    assert status == 408
    assert error["code"] == "request_timeout"


def _sent_slowly(server: RunningServer, at_once: bytes, trickled: bytes) -> bytes:
    """Send ``at_once``, then ``trickled`` a byte every 50 ms; what the server answers."""
    stop = threading.Event()
    with _connect(server) as sock:
        sock.sendall(at_once)
        writer = threading.Thread(target=_trickle, args=(sock, trickled, 0.05, stop))
        writer.start()
        try:
            return _read_all(sock)
        finally:
            stop.set()
            writer.join()


def test_headers_trickled_a_byte_at_a_time_are_cut_off(server: RunningServer) -> None:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n" + b"x-slow: " + b"a" * 1000
    status, error = _error(_sent_slowly(server, head[:20], head[20:]))
    assert status == 408
    assert "headers" in str(error["message"])


def test_a_trickled_body_is_cut_off_with_408(server: RunningServer) -> None:
    body = json.dumps({"model": "up", "messages": [{"role": "user", "content": "x" * 500}]})
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    status, error = _error(_sent_slowly(server, head, body.encode()))
    assert status == 408
    assert "body" in str(error["message"])


def test_a_declared_huge_body_is_refused_413_before_it_is_sent(server: RunningServer) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 104857600\r\nconnection: close\r\n\r\n"
    )
    with _connect(server) as sock:
        sock.sendall(head)
        status, error = _error(_read_all(sock))
    assert status == 413
    assert error["code"] == "request_too_large"


def test_a_chunked_body_past_the_limit_is_refused_413(server: RunningServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 4 MiB offered, 64 KiB allowed
            yield b"x" * 65536

    try:
        response = httpx.post(
            server.base_url + "/v1/chat/completions",
            content=chunks(),
            headers={"content-type": "application/json"},
            timeout=DEADLINE,
        )
    except httpx.WriteError:
        pytest.fail("the server closed the connection without an answer")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_headers_past_the_limit_are_refused_431(server: RunningServer) -> None:
    headers = b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 1000) for i in range(100))
    with _connect(server) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n" + headers + b"\r\n")
        status, error = _error(_read_all(sock))
    assert status == 431
    assert error["code"] == "request_headers_too_large"


def test_a_normal_request_is_served_while_many_slow_clients_hold_connections(
    server: RunningServer, tmp_path: Path
) -> None:
    stop = threading.Event()
    idle = [_connect(server) for _ in range(100)]
    trickling = [_connect(server) for _ in range(100)]
    writers = []
    for sock in trickling:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        writer = threading.Thread(
            target=_trickle, args=(sock, b"x-slow: " + b"a" * 10_000, 0.1, stop)
        )
        writer.start()
        writers.append(writer)
    try:
        started = time.monotonic()
        response = _chat(server)
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < DEADLINE
        # Every slow client is let go (answered 408, then closed), not kept.
        for sock in idle + trickling:
            status, _ = _error(_read_all(sock))
            assert status == 408
        assert _chat(server).status_code == 200
    finally:
        stop.set()
        for writer in writers:
            writer.join()
        for sock in idle + trickling:
            sock.close()
