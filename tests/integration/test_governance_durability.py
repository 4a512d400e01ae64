"""No usage record is lost: not to a kill -9, not to a PostgreSQL outage.

Every request the client saw succeed must end up in the ledger exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx

from ..services import Postgres
from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import MASTER, admin, create_key, write_config

MESSAGES = [{"role": "user", "content": "a b c d"}]


async def _load(
    server: RunningServer, key: str, *, workers: int, stop: asyncio.Event, pause: float = 0.0
) -> tuple[list[str], int]:
    """Send requests from ``workers`` loops until ``stop``; returns the request ids
    of the successes and how many requests failed (connection lost, 5xx)."""
    successes: list[str] = []
    failures = 0

    async def loop(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while not stop.is_set():
            try:
                response = await client.post(
                    f"{server.base_url}/v1/chat/completions",
                    json={"model": "up", "messages": MESSAGES, "max_tokens": 5},
                    headers={"authorization": f"Bearer {key}"},
                )
            except httpx.TransportError:
                failures += 1
                await asyncio.sleep(0.05)
                continue
            if response.status_code == 200:
                successes.append(response.headers["x-request-id"])
            else:
                failures += 1
            if pause:
                await asyncio.sleep(pause)

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(loop(client) for _ in range(workers)))
    return successes, failures


def _assert_each_once(server: RunningServer, successes: list[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        events = admin(server, "GET", "/admin/ledger?limit=10000").json()["events"]
        counts = Counter(e["request_id"] for e in events if e["status"] == "ok")
        if all(counts[rid] >= 1 for rid in successes) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    missing = [rid for rid in successes if counts[rid] == 0]
    assert not missing, f"{len(missing)} of {len(successes)} successes have no ledger event"
    assert all(counts[rid] == 1 for rid in successes)
    assert all(n == 1 for n in counts.values())


def test_kill_9_under_load_loses_no_usage_event(upstream: FakeUpstream, tmp_path: Path) -> None:
    config = write_config(tmp_path / "gatehouse.yaml", upstream)
    env = {"GATEHOUSE_MASTER_KEY": MASTER}
    server = start_server(tmp_path / "data", env=env, config=config)
    key = create_key(server)

    async def run() -> tuple[list[str], int]:
        stop = asyncio.Event()
        load = asyncio.create_task(_load(server, key, workers=16, stop=stop))
        await asyncio.sleep(1.5)
        os.kill(server.process.pid, signal.SIGKILL)
        await asyncio.sleep(0.3)
        stop.set()
        return await load

    successes, _ = asyncio.run(run())
    server.process.wait()
    assert len(successes) > 50
    restarted = start_server(tmp_path / "data", env=env, config=config)
    try:
        _assert_each_once(restarted, successes)
    finally:
        stop_server(restarted)


def test_a_30_second_postgres_outage_loses_no_usage_event(
    upstream: FakeUpstream, postgres_server: Postgres, postgres_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "gatehouse.yaml", upstream)
    env = {"GATEHOUSE_MASTER_KEY": MASTER, "GATEHOUSE_STORE__DATABASE_URL": postgres_url}
    server = start_server(tmp_path / "data", env=env, config=config)
    try:
        key = create_key(server)

        async def run() -> tuple[list[str], int, int]:
            stop = asyncio.Event()
            # Paced, so the ledger stays small enough to read back in one page.
            load = asyncio.create_task(_load(server, key, workers=4, stop=stop, pause=0.05))
            await asyncio.sleep(2)
            await asyncio.to_thread(postgres_server.stop)
            await asyncio.sleep(30)
            await asyncio.to_thread(postgres_server.start)
            await asyncio.sleep(2)
            stop.set()
            successes, failures = await load
            return successes, failures, 0

        successes, failures, _ = asyncio.run(run())
        assert failures == 0  # served throughout: the key was cached, events waited
        assert "shipping usage events failed" in server.log.read_text()  # it really was down
        assert len(successes) > 100
        _assert_each_once(server, successes)
    finally:
        if postgres_server.process is None:
            postgres_server.start()
        stop_server(server)
