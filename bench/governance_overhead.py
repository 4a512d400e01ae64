"""What auth, admission (limits + budget) and metering cost per request.

Two measurements, each against the same work without governance:

1. In process: ``Gateway.handle`` with a trivial fake provider, 64 calls in
   flight, (a) no stages, (b) the governance stages with a virtual key that
   has rpm/tpm/max_parallel limits and a hard budget, in-memory counters,
   every usage event group-committed to the SQLite outbox; (c) the same with
   Redis counters when ``--redis URL`` is given.
2. Over HTTP: a gatehouse server in front of the fake upstream from the test
   suite, auth off vs. the governed key (one client process, so the client
   is part of the bottleneck; the ratio is what matters).

    .venv/bin/python bench/governance_overhead.py [--calls 20000] [--redis redis://...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.integration.conftest import start_server, stop_server
from tests.integration.fake_upstream import FakeUpstream
from tests.integration.governance_helpers import MASTER, create_key, write_config
from tests.unit.fakes import EchoChat

from gatehouse.core.config import Settings
from gatehouse.core.principal import ALL_SCOPES
from gatehouse.core.types import ChatCompletionRequest
from gatehouse.gateway import CallContext, Gateway, ModelRegistry
from gatehouse.gateway.admin import KeyCreate
from gatehouse.gateway.governance import Governance
from gatehouse.gateway.service import pipeline_stages

REQUEST = ChatCompletionRequest.model_validate(
    {"model": "test/echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
)
KEY_BODY = {
    "name": "bench",
    "team": "bench",
    "limits": {"rpm": 10**9, "tpm": 10**12, "max_parallel": 10**6},
    "budget": {"max_usd": 10**9, "period": "month"},
}


async def in_process(calls: int, governed: bool, redis: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.model_validate(
            {
                "data_dir": tmp,
                "auth": {"master_key": MASTER},
                "store": {"redis_url": redis},
                "pricing": {"models": {"test/echo": {"output_cost_per_token": 1e-6}}},
            }
        )
        governance = Governance(settings)
        stages = pipeline_stages(governance) if governed else []
        gateway = Gateway(
            ModelRegistry([EchoChat()], {}), started_at=0, stages=stages, governance=governance
        )
        await gateway.start()
        created = await governance.admin.create_key(
            KeyCreate(**KEY_BODY), actor="bench", held_scopes=ALL_SCOPES
        )
        headers = {"authorization": f"Bearer {created.key}"}
        queue = iter(range(calls))

        async def worker() -> None:
            for n in queue:
                ctx = CallContext(
                    request_id=f"req-{n}", endpoint="chat", request=REQUEST, headers=headers
                )
                await gateway.handle(ctx)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(64)))
        elapsed = time.perf_counter() - started
        await gateway.stop()
        return calls / elapsed


async def over_http(url: str, key: str | None, requests: int) -> tuple[float, float]:
    body = {"model": "up", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    headers = {"authorization": f"Bearer {key}"} if key else {}
    latencies: list[float] = []
    queue = iter(range(requests))
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            for _ in queue:
                t0 = time.perf_counter()
                response = await client.post(
                    f"{url}/v1/chat/completions", json=body, headers=headers
                )
                assert response.status_code == 200, response.text
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(32)))
        elapsed = time.perf_counter() - started
    return requests / elapsed, statistics.median(latencies) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--redis")
    args = parser.parse_args()

    rows = []
    bare = asyncio.run(in_process(args.calls, False, None))
    rows.append(("in-process, no governance", bare, 1.0))
    memory = asyncio.run(in_process(args.calls, True, None))
    rows.append(("in-process, governed (memory counters)", memory, memory / bare))
    if args.redis:
        shared = asyncio.run(in_process(args.calls, True, args.redis))
        rows.append(("in-process, governed (Redis counters)", shared, shared / bare))

    upstream = FakeUpstream().start()
    http_rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            config = write_config(root / "g.yaml", upstream)
            open_server = start_server(root / "open", config=config)
            try:
                asyncio.run(over_http(open_server.base_url, None, 300))  # warm up
                http_rows.append(
                    (
                        "HTTP, auth off",
                        *asyncio.run(over_http(open_server.base_url, None, args.requests)),
                    )
                )
            finally:
                stop_server(open_server)
            server = start_server(root / "gov", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=config)
            try:
                key = create_key(server, **{k: v for k, v in KEY_BODY.items() if k != "name"})
                asyncio.run(over_http(server.base_url, key, 300))
                http_rows.append(
                    (
                        "HTTP, virtual key + limits + budget",
                        *asyncio.run(over_http(server.base_url, key, args.requests)),
                    )
                )
            finally:
                stop_server(server)
    finally:
        upstream.stop()

    print(f"{'configuration':45} {'calls/s':>10} {'ratio':>7}")
    for name, rate, ratio in rows:
        print(f"{name:45} {rate:10.0f} {ratio:7.2f}")
    print()
    print(f"{'configuration':45} {'req/s':>10} {'p50 ms':>8} {'ratio':>7}")
    base = http_rows[0][1]
    for name, rate, p50 in http_rows:
        print(f"{name:45} {rate:10.0f} {p50:8.2f} {rate / base:7.2f}")


if __name__ == "__main__":
    main()
