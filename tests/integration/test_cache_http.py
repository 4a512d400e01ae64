"""The cache and coalescing over real HTTP: a gatehouse server in front of a fake upstream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import Behaviour, FakeUpstream


@pytest.fixture(scope="module")
def server(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("cache")
    config = root / "gatehouse.yaml"
    config.write_text(
        f"""
local: {{chat: {{enabled: false}}, embeddings: {{enabled: false}}}}
models:
  - name: echo
    deployments:
      - {{provider: openai_compat, model: up-echo, base_url: '{upstream.base_url}/v1'}}
"""
    )
    running = start_server(root / "data", config=config)
    yield running
    stop_server(running)


@pytest.fixture
def http(server: RunningServer, upstream: FakeUpstream) -> Iterator[httpx.Client]:
    upstream.reset()
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


def ask(text: str, **extra: object) -> dict[str, object]:
    return {
        "model": "echo",
        "temperature": 0,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def test_a_repeated_request_is_a_hit(http: httpx.Client, upstream: FakeUpstream) -> None:
    first = http.post("/v1/chat/completions", json=ask("one two"))
    second = http.post("/v1/chat/completions", json=ask("one two"))
    assert first.headers["x-gatehouse-cache"] == "miss"
    assert second.headers["x-gatehouse-cache"] == "hit"
    assert second.json() == first.json()
    assert upstream.count("chat") == 1
    assert "cache" not in upstream.requests[0].body


def test_a_streamed_hit_replays_the_same_events(http: httpx.Client, upstream: FakeUpstream) -> None:
    body = ask("alpha beta gamma", stream=True)
    first = http.post("/v1/chat/completions", json=body)
    second = http.post("/v1/chat/completions", json=body)
    assert second.headers["x-gatehouse-cache"] == "hit"
    assert second.headers["content-type"].startswith("text/event-stream")
    assert second.text == first.text
    assert second.text.endswith("data: [DONE]\n\n")
    assert upstream.count("chat") == 1


def test_no_store_and_bypass_reach_the_upstream(http: httpx.Client, upstream: FakeUpstream) -> None:
    for _ in range(2):
        response = http.post(
            "/v1/chat/completions", json=ask("fresh"), headers={"cache-control": "no-store"}
        )
        assert response.headers["x-gatehouse-cache"] == "bypass"
    http.post("/v1/chat/completions", json=ask("fresh", cache={"bypass": True}))
    assert upstream.count("chat") == 3
    bad = http.post("/v1/chat/completions", json=ask("x", cache={"namespace": "no spaces"}))
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "cache.namespace"


def test_fifty_concurrent_identical_requests_make_one_upstream_call(
    server: RunningServer, upstream: FakeUpstream
) -> None:
    upstream.reset()
    upstream.default = Behaviour(delay=0.5)

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            calls = [client.post("/v1/chat/completions", json=ask("together")) for _ in range(50)]
            return await asyncio.gather(*calls)

    responses = asyncio.run(run())
    upstream.default = Behaviour()
    assert upstream.count("chat") == 1
    assert {r.json()["choices"][0]["message"]["content"] for r in responses} == {"echo: together"}
    # Every caller but one either shared the in-flight call or, arriving after
    # it finished, was answered from the cache: none reached the upstream.
    shared = [
        r
        for r in responses
        if r.headers.get("x-gatehouse-coalesced") == "1" or r.headers["x-gatehouse-cache"] == "hit"
    ]
    assert len(shared) == 49


@pytest.fixture(scope="module")
def semantic_server(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("semantic")
    config = root / "gatehouse.yaml"
    config.write_text(
        f"""
local: {{chat: {{enabled: false}}}}
cache: {{semantic: {{groups: [faq], threshold: 0.95}}}}
models:
  - name: faq
    deployments:
      - {{provider: openai_compat, model: up-faq, base_url: '{upstream.base_url}/v1'}}
"""
    )
    running = start_server(root / "data", config=config)
    yield running
    stop_server(running)


def test_the_semantic_cache_answers_a_rewording_with_the_real_model(
    semantic_server: RunningServer, upstream: FakeUpstream
) -> None:
    upstream.reset()
    system = {"role": "system", "content": "Answer briefly."}

    def faq(question: str, system_prompt: dict[str, str] = system) -> dict[str, object]:
        messages = [system_prompt, {"role": "user", "content": question}]
        return {"model": "faq", "temperature": 0, "messages": messages}

    with httpx.Client(base_url=semantic_server.base_url, timeout=120) as http:
        first = http.post("/v1/chat/completions", json=faq("What is the capital of France?"))
        assert first.headers["x-gatehouse-cache"] == "miss"
        reworded = http.post(
            "/v1/chat/completions", json=faq("What is the capital city of France?")
        )
        assert reworded.headers["x-gatehouse-cache"] == "hit"
        assert float(reworded.headers["x-gatehouse-cache-similarity"]) >= 0.95
        assert reworded.json()["choices"] == first.json()["choices"]
        other_system = {"role": "system", "content": "Answer in French."}
        elsewhere = http.post(
            "/v1/chat/completions",
            json=faq("What is the capital of France?", other_system),
        )
        assert elsewhere.headers["x-gatehouse-cache"] == "miss"
    assert upstream.count("chat") == 2
