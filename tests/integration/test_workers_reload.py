"""``gatehouse serve --workers 2``: a reload reaches both workers, SIGTERM ends both with 0,
and without Redis a key's rate limit holds across the two (they share ``counters.db``).

Which worker answered a request is read from the kernel: the test keeps each
connection open and finds the worker process holding its socket (``/proc``),
so each worker's view is checked, not whichever the kernel happened to pick.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import orjson
import pytest

from ..services import Redis
from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import MASTER, SECOND_GROUP, admin, create_key, write_config

ENV = {"GATEHOUSE_MASTER_KEY": MASTER}


def _workers(parent: int) -> list[int]:
    """The worker processes of the server whose parent process is ``parent``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in command:
            found.append(int(entry))
    return sorted(found)


def _holder(server_port: int, client_port: int, workers: list[int]) -> int | None:
    """The worker holding the server's end of the connection from ``client_port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (
                int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                inodes.add(f"socket:[{fields[9]}]")
    for pid in workers:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return pid
            except OSError:
                continue
    return None


class Answer:
    def __init__(self, worker: int, status: int, body: bytes, request_id: str) -> None:
        self.worker = worker
        self.status = status
        self.body = body
        self.request_id = request_id


def _each_worker(
    server: RunningServer,
    workers: list[int],
    method: str,
    path: str,
    body: object = None,
    key: str = MASTER,
    every: list[Answer] | None = None,
) -> dict[int, Answer]:
    """One request answered by each worker: new connections, kept open until every
    worker has answered one (so that the kernel hands the next to another). Every
    answer, a worker's second ones included, is added to ``every``."""
    port = int(server.base_url.rsplit(":", 1)[1])
    answers: dict[int, Answer] = {}
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    payload = orjson.dumps(body) if body is not None else None
    with ExitStack() as connections:
        for _ in range(200):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connections.callback(connection.close)
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            content = response.read()
            worker = _holder(port, connection.sock.getsockname()[1], workers)
            assert worker is not None, "no worker holds the connection"
            answer = Answer(
                worker, response.status, content, response.getheader("x-request-id", "")
            )
            answers.setdefault(worker, answer)
            if every is not None:
                every.append(answer)
            if len(answers) == len(workers):
                return answers
    raise AssertionError(f"200 connections did not reach every worker: {sorted(answers)}")


def _models(answer: Answer) -> set[str]:
    assert answer.status == 200, answer.body
    return {m["id"] for m in orjson.loads(answer.body)["data"]}


@pytest.fixture
def config(upstream: FakeUpstream, tmp_path: Path) -> Iterator[Path]:
    yield write_config(tmp_path / "gatehouse.yaml", upstream)
    upstream.reset()


@contextlib.contextmanager
def _two_workers(
    config: Path, data: Path, env: dict[str, str]
) -> Iterator[tuple[RunningServer, list[int]]]:
    server = start_server(data, "--workers", "2", env=env, config=config)
    try:
        deadline = time.monotonic() + 60
        while len(workers := _workers(server.process.pid)) < 2:
            assert time.monotonic() < deadline, "two workers did not start"
            time.sleep(0.1)
        _each_worker(server, workers, "GET", "/healthz")  # both serve
        yield server, workers
    finally:
        stop_server(server)


@pytest.fixture
def two_workers(config: Path, tmp_path: Path) -> Iterator[tuple[RunningServer, list[int]]]:
    with _two_workers(config, tmp_path / "data", ENV) as started:
        yield started


def _until_each_lists(server: RunningServer, workers: list[int], model: str) -> float:
    """Seconds until every worker lists ``model`` (asserted within 30 s)."""
    started = time.monotonic()
    while True:
        answers = _each_worker(server, workers, "GET", "/v1/models")
        seen = {w: _models(a) for w, a in answers.items()}
        if all(model in models for models in seen.values()):
            return time.monotonic() - started
        assert time.monotonic() - started < 30, f"a worker does not list {model}: {seen}"
        time.sleep(0.05)


def test_a_reload_through_the_api_reaches_both_workers(
    two_workers: tuple[RunningServer, list[int]], config: Path, upstream: FakeUpstream
) -> None:
    server, workers = two_workers
    before = _each_worker(server, workers, "GET", "/v1/models")
    assert all(_models(a) == {"up"} for a in before.values())

    write_config(config, upstream, SECOND_GROUP.format(base=upstream.base_url))
    reloaded = admin(server, "POST", "/admin/config/reload")
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["status"] == "applied"
    assert "fleet" not in reloaded.json()  # no Redis: passed on by the parent process

    delay = _until_each_lists(server, workers, "up2")
    print(f"\nboth workers list up2 {delay:.2f}s after the reload answer")
    chats = _each_worker(
        server,
        workers,
        "POST",
        "/v1/chat/completions",
        {"model": "up2", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert {w: a.status for w, a in chats.items()} == {w: 200 for w in workers}
    assert "SIGHUP: each of the 2 workers reloads the configuration" in server.log.read_text()


def test_sigterm_ends_both_workers_with_0_and_ships_every_usage_event(
    two_workers: tuple[RunningServer, list[int]], config: Path, tmp_path: Path
) -> None:
    server, workers = two_workers
    key = create_key(server)
    chat = {"model": "up", "messages": [{"role": "user", "content": "hi"}]}
    every: list[Answer] = []
    for _ in range(3):  # each worker serves three calls or more, recorded in the outbox
        _each_worker(server, workers, "POST", "/v1/chat/completions", chat, key, every)
    assert {a.status for a in every} == {200}
    assert {a.worker for a in every} == set(workers)

    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0
    log = server.log.read_text()
    for worker in workers:
        assert f"worker {worker} ended with status 0" in log, log
    assert not _workers(server.process.pid)
    with sqlite3.connect(tmp_path / "data" / "outbox.db") as outbox:
        assert outbox.execute("SELECT count(*) FROM outbox").fetchone() == (0,)

    again = start_server(tmp_path / "data", env=ENV, config=config)
    try:
        events = admin(again, "GET", "/admin/ledger?limit=1000").json()["events"]
        recorded = {e["request_id"]: e["status"] for e in events if e["key_id"] == key[3:19]}
        assert recorded == {a.request_id: "ok" for a in every}
    finally:
        stop_server(again)


def test_with_redis_each_worker_follows_the_reload_as_a_replica_of_its_own(
    config: Path, upstream: FakeUpstream, tmp_path: Path, redis_server: Redis
) -> None:
    env = {**ENV, "GATEHOUSE_STORE__REDIS_URL": redis_server.url}
    with _two_workers(config, tmp_path / "data", env) as (server, workers):
        write_config(config, upstream, SECOND_GROUP.format(base=upstream.base_url))
        reloaded = admin(server, "POST", "/admin/config/reload")
        assert reloaded.status_code == 200, reloaded.text
        fleet = reloaded.json()["fleet"]
        assert fleet["asked"] is True
        # The worker that did not answer the call was asked through Redis (other
        # tests' replicas sharing this redis-server may be listed too).
        names = {f"{socket.gethostname()}:{pid}" for pid in workers}
        asked = {r["replica"] for r in fleet["reported"]} | set(fleet["pending"])
        assert len(names & asked) == 1
        delay = _until_each_lists(server, workers, "up2")
        print(f"\nboth workers list up2 {delay:.2f}s after the reload answer")
        # Not passed on by the parent as well (which would log it).
        assert "SIGHUP" not in server.log.read_text()


def test_without_redis_a_rate_limit_holds_across_both_workers(
    two_workers: tuple[RunningServer, list[int]], tmp_path: Path
) -> None:
    server, workers = two_workers
    key = create_key(server, limits={"rpm": 4})
    chat = {"model": "up", "messages": [{"role": "user", "content": "hi"}]}
    every: list[Answer] = []
    started = time.monotonic()
    for _ in range(5):  # each worker answers five calls or more: on its own it would pass 4
        _each_worker(server, workers, "POST", "/v1/chat/completions", chat, key, every)
    elapsed = time.monotonic() - started
    assert {a.status for a in every} == {200, 429}
    passed = [a for a in every if a.status == 200]
    # GCRA: a burst of 4, then one more every 15 s.
    assert 4 <= len(passed) <= 4 + int(elapsed / 15)
    refused = next(a for a in every if a.status == 429)
    assert orjson.loads(refused.body)["error"]["code"] == "rate_limit_exceeded"
    assert (tmp_path / "data" / "counters.db").is_file()
