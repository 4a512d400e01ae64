"""Two gatehouse processes on one PostgreSQL: the request log and the rollup job.

Both servers run the retention round every 0.2 s on the same ledger, the
situation the rollup job's claim-and-stamp transaction is for. After traffic
through both, every event is rolled up exactly once (the rollups' sums equal
the raw ledger's), spend read from the rollups equals the events' costs, and
the request log pages across the two servers with one cursor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from gatehouse.store import schema
from gatehouse.store.database import Database, database_url
from gatehouse.store.ledger import LedgerStore

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import MASTER, admin, create_key, write_config

REQUESTS = 40


@pytest.fixture
def replicas(
    upstream: FakeUpstream, postgres_url: str, tmp_path: Path
) -> Iterator[list[RunningServer]]:
    config = write_config(tmp_path / "gatehouse.yaml", upstream)
    env = {
        "GATEHOUSE_MASTER_KEY": MASTER,
        "GATEHOUSE_STORE__DATABASE_URL": postgres_url,
        "GATEHOUSE_RETENTION__INTERVAL_SECONDS": "0.2",
        "GATEHOUSE_RETENTION__BATCH_SIZE": "3",  # many small rounds racing each other
    }
    servers = []
    try:
        for index in range(2):
            servers.append(start_server(tmp_path / f"data-{index}", env=env, config=config))
        yield servers
    finally:
        for server in servers:
            stop_server(server)
        upstream.reset()


def _traffic(servers: list[RunningServer], keys: list[str]) -> None:
    for n in range(REQUESTS):
        response = httpx.post(
            f"{servers[n % 2].base_url}/v1/chat/completions",
            json={"model": "up", "messages": [{"role": "user", "content": "a b c"}]},
            headers={"authorization": f"Bearer {keys[n % len(keys)]}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text


async def _rolled_up(postgres_url: str) -> tuple[int, int, float, float]:
    """Once nothing is pending: (events, rolled-up requests, event cost, rolled-up cost)."""
    database = Database(database_url(postgres_url, Path(".")))
    try:
        ledger = LedgerStore(database)
        deadline = time.monotonic() + 120
        while await ledger.count() < REQUESTS or await ledger.rollups.pending():
            assert time.monotonic() < deadline, "the servers never rolled the ledger up"
            await asyncio.sleep(0.2)
        async with database.engine.connect() as conn:
            rolled = (
                await conn.execute(
                    select(func.sum(schema.rollups.c.requests), func.sum(schema.rollups.c.cost_usd))
                )
            ).one()
            raw_cost = await conn.scalar(select(func.sum(schema.ledger.c.cost_usd)))
        return await ledger.count(), int(rolled[0]), float(raw_cost or 0), float(rolled[1])
    finally:
        await database.close()


def test_two_replicas_roll_up_each_event_once_and_share_the_request_log(
    replicas: list[RunningServer], postgres_url: str
) -> None:
    keys = [create_key(replicas[0], team="red"), create_key(replicas[1], team="blue")]
    _traffic(replicas, keys)
    events, rolled, raw_cost, rolled_cost = asyncio.run(_rolled_up(postgres_url))
    assert events == rolled == REQUESTS
    assert raw_cost == rolled_cost > 0

    spend = admin(replicas[1], "GET", "/admin/spend?group_by=team").json()["rows"]
    assert {row["group"]: row["requests"] for row in spend} == {
        "red": REQUESTS // 2,
        "blue": REQUESTS // 2,
    }
    assert sum(row["cost_usd"] for row in spend) == raw_cost

    # One cursor, alternating servers: every event once, newest first.
    seen: list[dict[str, object]] = []
    path = "/admin/requests?limit=7"
    for turn in range(REQUESTS):
        page = admin(replicas[turn % 2], "GET", path).json()
        seen.extend(page["events"])
        if page["next_cursor"] is None:
            break
        path = f"/admin/requests?limit=7&cursor={page['next_cursor']}"
    assert len(seen) == len({e["id"] for e in seen}) == REQUESTS
    blue_key = keys[1][3:19]
    blue = admin(replicas[0], "GET", f"/admin/requests?key={blue_key}&limit=100").json()
    assert len(blue["events"]) == REQUESTS // 2
    request_id = blue["events"][0]["request_id"]
    found = admin(replicas[1], "GET", f"/admin/requests/{request_id}").json()
    assert [e["key_id"] for e in found["events"]] == [blue_key]
    for server in replicas:  # no round failed (a lock conflict, a deadlock) on either
        assert "retention round failed" not in server.log.read_text()
