"""What clients see when one of two deployments fails 30% of the time.

Starts the fake upstream from the test suite and a gatehouse server in front
of it (one model group, two deployments, default retry settings), then sends
the same requests (a) straight to the healthy upstream, (b) through gatehouse
with both deployments healthy, (c) through gatehouse with one deployment
answering 500 to 30% of its requests. Prints success rate and latency, and
the latency gatehouse adds over the direct call.

    .venv/bin/python bench/routing_resilience.py [--requests 2000] [--concurrency 10]
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
from tests.integration.fake_upstream import Behaviour, FakeUpstream

BODY = {"model": "", "messages": [{"role": "user", "content": "hello from the benchmark"}]}


async def run(url: str, model: str, requests: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    ok = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal ok
            while not queue.empty():
                queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(url, json={**BODY, "model": model})
                latencies.append(time.perf_counter() - started)
                ok += response.status_code == 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok / requests, latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()

    upstream = FakeUpstream().start()
    root = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
    config = root / "gatehouse.yaml"
    base = f"{upstream.base_url}/v1"
    config.write_text(
        "models:\n  - name: pair\n    deployments:\n"
        f"      - {{provider: openai_compat, model: up-healthy, base_url: '{base}'}}\n"
        f"      - {{provider: openai_compat, model: up-flaky, base_url: '{base}'}}\n"
    )
    server = start_server(root / "data", config=config)
    try:
        direct = f"{upstream.base_url}/v1/chat/completions"
        through = f"{server.base_url}/v1/chat/completions"
        asyncio.run(run(through, "pair", 200, args.concurrency))  # warm up pools
        rows = []
        for name, url, model, flaky in [
            ("direct to upstream", direct, "up-healthy", False),
            ("gatehouse, both healthy", through, "pair", False),
            ("gatehouse, one fails 30%", through, "pair", True),
        ]:
            upstream.reset()
            if flaky:
                upstream.by_model["up-flaky"] = Behaviour("status", status=500, probability=0.3)
            success, latencies = asyncio.run(run(url, model, args.requests, args.concurrency))
            failures = sum(1 for r in upstream.requests if r.model == "up-flaky") if flaky else 0
            rows.append((name, success, pct(latencies, 50), pct(latencies, 99), failures))
        base_p50 = rows[0][2]
        print(f"{args.requests} requests, concurrency {args.concurrency}")
        print(f"{'scenario':28} {'success':>8} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10}")
        for name, success, p50, p99, _ in rows:
            print(f"{name:28} {success:>8.2%} {p50:>8.2f} {p99:>8.2f} {p50 - base_p50:>+10.2f}")
        print(f"upstream requests to the flaky deployment in the last run: {rows[2][4]}")
    finally:
        stop_server(server)
        upstream.stop()


if __name__ == "__main__":
    main()
