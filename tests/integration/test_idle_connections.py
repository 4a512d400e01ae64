"""Idle keep-alive connections against a real gatehouse process, over raw sockets.

After a response, a connection must either start its next request or be
closed: by the keep-alive timeout while it sends nothing, by the head's
deadline once it sends anything. Bytes that begin no request (the blank lines
HTTP/1.1 lets a client send between requests) must not hold it open.
Bounds are generous deadlines for the close, never timings that decide a pass.
"""

from __future__ import annotations

import socket

import pytest

from .conftest import RunningServer
from .test_slow_clients import HEADER_TIMEOUT, _connect, server  # noqa: F401

pytestmark = pytest.mark.integration

# uvicorn's keep-alive timeout is 5 s and the head's deadline HEADER_TIMEOUT:
# the close is due within either; this is many times both.
CLOSED_WITHIN = 30.0


def _served_once(sock: socket.socket) -> None:
    """One request on a kept-alive connection, its whole answer read."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes the connection (reads to its end) within CLOSED_WITHIN."""
    sock.settimeout(CLOSED_WITHIN)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_an_idle_kept_alive_connection_is_closed(server: RunningServer) -> None:  # noqa: F811
    with _connect(server) as sock:
        _served_once(sock)
        assert _closed_by_server(sock)


def test_blank_lines_after_a_response_do_not_hold_the_connection_open(
    server: RunningServer,  # noqa: F811
) -> None:
    # A blank line clears the keep-alive wait, but begins no request: without a
    # deadline of its own, one CRLF held the connection (and a descriptor) forever.
    assert HEADER_TIMEOUT < CLOSED_WITHIN
    with _connect(server) as sock:
        _served_once(sock)
        sock.sendall(b"\r\n")
        assert _closed_by_server(sock)
