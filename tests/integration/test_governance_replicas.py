"""Three gatehouse processes sharing one Redis and one PostgreSQL.

300 concurrent requests on one key whose hard budget covers exactly 100 calls
and whose rate limit is 120 a minute, the upstream counting eight times the
prompt tokens that characters / 4 gives: no more than 100 are accepted, the
ledger (in PostgreSQL, shipped from three outboxes) has exactly one ``ok``
event per accepted request, and the spend never passes the budget. Then 300
more on a key with only the 120/min limit: GCRA lets through the burst of 120
plus what refills while the burst runs (2 a second), never more.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..services import Redis
from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import MASTER, OUTPUT_PRICE, admin, create_key, write_config

MESSAGES = [{"role": "user", "content": "a b c d"}]  # 5 completion tokens: 5 * OUTPUT_PRICE
# The upstream counts 40 prompt tokens where characters / 4 (+ 4 a message) says 5.
PROMPT_TOKENS = 40
INPUT_PRICE = OUTPUT_PRICE / 4  # a power of two too: sums stay exact


@pytest.fixture
def replicas(
    upstream: FakeUpstream, redis_server: Redis, postgres_url: str, tmp_path: Path
) -> Iterator[list[RunningServer]]:
    config = write_config(tmp_path / "gatehouse.yaml", upstream, input_price=INPUT_PRICE)
    upstream.prompt_tokens = PROMPT_TOKENS
    env = {
        "GATEHOUSE_MASTER_KEY": MASTER,
        "GATEHOUSE_STORE__DATABASE_URL": postgres_url,
        "GATEHOUSE_STORE__REDIS_URL": redis_server.url,
    }
    servers = []
    try:
        for index in range(3):
            servers.append(start_server(tmp_path / f"data-{index}", env=env, config=config))
        yield servers
    finally:
        for server in servers:
            stop_server(server)
        upstream.reset()


async def _burst(servers: list[RunningServer], key: str, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"{servers[i % len(servers)].base_url}/v1/chat/completions",
                    json={"model": "up", "messages": MESSAGES, "max_tokens": 5},
                    headers={"authorization": f"Bearer {key}"},
                )
                for i in range(count)
            )
        )


def _ledger_events(server: RunningServer, key: str, expected: int) -> list[dict[str, object]]:
    """The key's ledger events, once all ``expected`` have been shipped."""
    deadline = time.monotonic() + 30
    mine: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        events = admin(server, "GET", "/admin/ledger?limit=10000").json()["events"]
        mine = [e for e in events if e["key_id"] == key[3:19]]
        if len(mine) >= expected:
            break
        time.sleep(0.2)
    return mine


def test_budget_and_rate_limit_hold_across_three_replicas(
    replicas: list[RunningServer],
) -> None:
    per_call = PROMPT_TOKENS * INPUT_PRICE + 5 * OUTPUT_PRICE
    key = create_key(
        replicas[0], limits={"rpm": 120}, budget={"max_usd": 100 * per_call, "period": "day"}
    )
    responses = asyncio.run(_burst(replicas, key, 300))
    statuses = [r.status_code for r in responses]
    accepted = [r.headers["x-request-id"] for r in responses if r.status_code == 200]
    assert set(statuses) <= {200, 429}
    # Each call reserves an upper bound of its cost (the prompt's UTF-8 bytes and
    # template overhead, max_tokens), more than it costs: fewer than 100 may fit
    # while many are in flight, never more.
    assert 0 < len(accepted) <= 100

    events = _ledger_events(replicas[1], key, 300)
    assert len(events) == 300  # one per request, rejected ones included
    ok = [e for e in events if e["status"] == "ok"]
    assert sorted(e["request_id"] for e in ok) == sorted(accepted)  # exactly one each
    assert {e["cost_usd"] for e in ok} == {per_call}  # charged what the upstream counted
    assert sum(float(e["cost_usd"]) for e in ok) <= 100 * per_call  # type: ignore[arg-type]
    rejected = {e["status"] for e in events if e["status"] != "ok"}
    assert rejected <= {"budget_exceeded", "rate_limit_exceeded"}

    limited = create_key(replicas[0], limits={"rpm": 120})
    started = time.monotonic()
    burst = asyncio.run(_burst(replicas, limited, 300))
    elapsed = time.monotonic() - started
    passed = sum(r.status_code == 200 for r in burst)
    assert 120 <= passed <= 120 + int(elapsed * 2) + 1
    ledger = _ledger_events(replicas[2], limited, 300)
    assert sum(e["status"] == "ok" for e in ledger) == passed
