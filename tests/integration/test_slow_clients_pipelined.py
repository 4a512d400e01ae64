"""A pipelined request against a real gatehouse process: its body's deadline
runs only while the server reads it.

uvicorn stops reading a connection once a pipelined request's head arrives and
reads again when the response before it is complete; a body sent meanwhile
waits in the socket. A first answer slower than ``body_timeout_seconds`` (a
model call) must not cost the second request a 408. Bounds here are generous
deadlines for success, never timings that decide a pass.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator

import pytest

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import Behaviour, FakeUpstream
from .governance_helpers import write_config

pytestmark = pytest.mark.integration

BODY_TIMEOUT = 1.0
SLOW_ANSWER = 4 * BODY_TIMEOUT
DEADLINE = 30.0


@pytest.fixture(scope="module")
def server(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("pipelined")
    limits = f"""
server:
  body_timeout_seconds: {BODY_TIMEOUT}
"""
    config = write_config(root / "gatehouse.yaml", upstream, limits)
    running = start_server(root / "data", config=config)
    yield running
    stop_server(running)


def _chat_request(content: str, *, close: bool = False) -> tuple[bytes, bytes]:
    body = json.dumps({"model": "up", "messages": [{"role": "user", "content": content}]})
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n" + ("connection: close\r\n" if close else "") + "\r\n"
    )
    return head.encode(), body.encode()


def _statuses(raw: bytes) -> list[int]:
    """The status of each response in ``raw`` (one after another on the connection)."""
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


def test_a_pipelined_body_sent_while_a_slow_answer_goes_out_is_not_timed_out(
    server: RunningServer, upstream: FakeUpstream
) -> None:
    upstream.reset()
    upstream.then(Behaviour(delay=SLOW_ANSWER))  # the first answer: a long model call
    host, port = server.base_url.removeprefix("http://").split(":")
    first_head, first_body = _chat_request("first")
    second_head, second_body = _chat_request("second", close=True)
    with socket.create_connection((host, int(port)), timeout=DEADLINE) as sock:
        sock.sendall(first_head + first_body)
        # The first request reaches the upstream: its body has been read, and
        # uvicorn will not read again until it has answered.
        limit = time.monotonic() + DEADLINE
        while upstream.count("chat") < 1 and time.monotonic() < limit:
            time.sleep(0.02)
        assert upstream.count("chat") == 1
        sock.sendall(second_head)
        time.sleep(0.2)  # the head alone first: the body is a later read
        sock.sendall(second_body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    assert _statuses(raw) == [200, 200], raw[:2000]
    assert b"echo: second" in raw
    assert upstream.count("chat") == 2
