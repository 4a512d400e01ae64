"""A client that stops reading a streamed answer, against a real gatehouse process.

Once the connection's write buffer is full, it must drain within
``server.write_timeout_seconds``; else the connection is closed, which ends
the stream: the upstream call is cancelled, the usage record is written and
the key's concurrency slot is free again. Bounds here are generous deadlines
for success, never timings that decide a pass.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import Behaviour, FakeUpstream
from .governance_helpers import MASTER, create_key, ledger, write_config

pytestmark = pytest.mark.integration

WRITE_TIMEOUT = 1.0
DEADLINE = 30.0
# Far more than the kernel's socket buffers hold (4 MiB at most for sending by
# default on Linux, 4 KiB asked for receiving here) plus uvicorn's 64 KiB mark.
ANSWER_BYTES = 12 * 1024 * 1024


@pytest.fixture(scope="module")
def server(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("slow-readers")
    limits = f"""
server:
  write_timeout_seconds: {WRITE_TIMEOUT}
"""
    config = write_config(root / "gatehouse.yaml", upstream, limits)
    running = start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=config)
    yield running
    stop_server(running)


def _chat(server: RunningServer, key: str) -> httpx.Response:
    return httpx.post(
        server.base_url + "/v1/chat/completions",
        json={"model": "up", "messages": [{"role": "user", "content": "next"}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=DEADLINE,
    )


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    limit = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < limit, what
        time.sleep(0.1)


def test_a_stream_the_client_stops_reading_is_closed_recorded_and_its_slot_freed(
    server: RunningServer, upstream: FakeUpstream
) -> None:
    key = create_key(server, limits={"max_parallel": 1})
    upstream.reset()
    upstream.then(Behaviour("oversized", oversized_bytes=ANSWER_BYTES, piece_chars=16 * 1024))
    body = json.dumps(
        {"model": "up", "stream": True, "messages": [{"role": "user", "content": "big"}]}
    ).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(DEADLINE)
    with sock:
        sock.connect((host, int(port)))
        sock.sendall(head + body)
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200"), first[:200]
        # The client reads no more. The stream held the key's one slot; once the
        # write deadline closes the connection, another call gets through.
        answers: list[int] = []

        def served() -> bool:
            answers.append(_chat(server, key).status_code)
            return answers[-1] == 200

        _wait_for(served, "the slot was never freed")
        assert set(answers) <= {200, 429}
        assert upstream.completed_streams == 0  # cut short, not sent whole
        # The connection is gone: what the kernel still holds, then its end.
        try:
            while sock.recv(1 << 20):
                pass
        except ConnectionResetError:
            pass  # aborted with unread data: the kernel resets
    # Every call is recorded: the stream as the client's leaving, each refusal
    # while it held the slot, and the call served after.
    events = ledger(server, key, count=len(answers) + 1)
    streamed = [e for e in events if e["stream"]]
    assert [(e["status"], e["http_status"]) for e in streamed] == [("client_closed", 499)]
    assert sorted(e["http_status"] for e in events if not e["stream"]) == sorted(answers)
