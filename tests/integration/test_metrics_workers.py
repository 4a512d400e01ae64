"""`gatehouse serve --workers 2`: every scrape reports both workers' counts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream

REQUESTS = 24


@pytest.fixture(scope="module")
def two_workers(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("workers")
    config = root / "gatehouse.yaml"
    config.write_text(
        f"""
local: {{chat: {{enabled: false}}, embeddings: {{enabled: false}}}}
aliases: {{}}
models:
  - name: pair
    deployments:
      - {{provider: openai_compat, model: up-w, base_url: '{upstream.base_url}/v1'}}
"""
    )
    # Files a previous run left must not add to this run's counts.
    stale = root / "data" / "prometheus"
    stale.mkdir(parents=True)
    (stale / "counter_1.db").write_bytes(b"left by an earlier run")
    server = start_server(root / "data", "--workers", "2", config=config)
    yield server
    stop_server(server)


def scrape(server: RunningServer) -> dict[str, list[tuple[dict[str, str], float]]]:
    # A new connection each time: the kernel hands it to either worker.
    text = httpx.get(f"{server.base_url}/metrics", headers={"connection": "close"}).text
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    return samples


def chat(server: RunningServer, index: int) -> int:
    body = {
        "model": "pair",
        "messages": [{"role": "user", "content": f"hello {index}"}],
        "stream": index % 3 == 0,
        "stream_options": {"include_usage": True} if index % 3 == 0 else None,
    }
    body = {k: v for k, v in body.items() if v is not None}
    response = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json=body,
        headers={"connection": "close"},
        timeout=30,
    )
    return response.status_code


def test_every_scrape_adds_up_both_workers(two_workers: RunningServer, tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda i: chat(two_workers, i), range(REQUESTS)))
    assert statuses == [200] * REQUESTS
    workers: set[str] = set()
    tokens: set[float] = set()
    for _ in range(8):
        samples = scrape(two_workers)
        assert sum(v for _, v in samples["gatehouse_requests_total"]) == REQUESTS
        assert sum(v for _, v in samples["gatehouse_upstream_duration_seconds_count"]) == REQUESTS
        tokens.add(sum(v for _, v in samples["gatehouse_tokens_total"]))
        # Read from the answering worker's memory: labelled with that worker.
        for labels, _ in samples["gatehouse_deployment_in_flight"]:
            workers.add(labels["worker"])
    assert len(tokens) == 1  # the same totals whichever worker answered
    assert tokens.pop() > 0
    assert workers
    assert all(worker.isdigit() for worker in workers)
