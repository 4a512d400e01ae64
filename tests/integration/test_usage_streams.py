"""Streamed calls always capture usage, every bucket of it, against a real server.

The client need not ask for usage: gatehouse asks the upstream anyway
(``stream_options.include_usage``), charges the ledger the exact tokens, and
keeps the usage chunk out of a stream whose client did not ask for it. The
Anthropic face (``/v1/messages``) and the Responses API (``/v1/responses``)
carry the cache and reasoning details in their own shapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import MASTER, admin, create_key, ledger

# USD per token, powers of two so every cost is exact.
INPUT, CACHE_READ, CACHE_WRITE, OUTPUT, REASONING = 2**-10, 2**-13, 2**-9, 2**-8, 2**-7
PRICES = (
    f"input_cost_per_token: {INPUT}, cache_read_input_token_cost: {CACHE_READ},"
    f" cache_creation_input_token_cost: {CACHE_WRITE}, output_cost_per_token: {OUTPUT},"
    f" output_cost_per_reasoning_token: {REASONING}"
)
# What the OpenAI-shaped upstream reports: 40 prompt tokens (16 read from its
# cache, 8 written to it) and 20 completion tokens (12 of them reasoning).
OPENAI_USAGE = {
    "prompt_tokens": 40,
    "completion_tokens": 20,
    "total_tokens": 60,
    "prompt_tokens_details": {"cached_tokens": 16, "cache_write_tokens": 8},
    "completion_tokens_details": {"reasoning_tokens": 12},
}
OPENAI_COST = 16 * INPUT + 16 * CACHE_READ + 8 * CACHE_WRITE + 8 * OUTPUT + 12 * REASONING
BUCKETS = ("prompt_tokens", "cached_tokens", "cache_write_tokens", "completion_tokens")


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("usage-streams")
    config = root / "gatehouse.yaml"
    config.write_text(
        f"""
local:
  chat: {{enabled: false}}
  embeddings: {{enabled: false}}
models:
  - name: up
    deployments:
      - {{provider: openai_compat, model: up-model, base_url: '{upstream.base_url}/v1',
          {PRICES}}}
  - name: claude
    deployments:
      - {{provider: anthropic, model: claude-x, base_url: '{upstream.base_url}', api_key: sk-a,
          {PRICES}}}
  - name: gem
    deployments:
      - {{provider: gemini, model: gemini-x, base_url: '{upstream.base_url}', api_key: sk-g,
          {PRICES}}}
"""
    )
    server = start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=config)
    yield server
    stop_server(server)


@pytest.fixture
def fresh(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream.reset()
    upstream.usage_overrides["openai"] = OPENAI_USAGE
    yield upstream
    upstream.reset()


def sse_data(response: httpx.Response) -> list[Any]:
    """The JSON ``data:`` payloads of a server-sent event stream, ``[DONE]`` left out."""
    payloads = []
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            payloads.append(orjson.loads(line[len("data: ") :]))
    return payloads


def stream_chat(server: RunningServer, key: str, body: dict[str, Any]) -> list[Any]:
    with httpx.stream(
        "POST",
        f"{server.base_url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hello there"}], "stream": True, **body},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200, response.read()
        return sse_data(response)


def test_a_stream_whose_client_did_not_ask_is_charged_every_bucket(
    gateway: RunningServer, fresh: FakeUpstream
) -> None:
    key = create_key(gateway, team="usage-quiet")
    chunks = stream_chat(gateway, key, {"model": "up"})
    # The upstream was asked for usage; the client, which did not ask, gets no usage chunk.
    assert fresh.requests[-1].body["stream_options"] == {"include_usage": True}
    assert chunks
    assert all(chunk.get("usage") is None for chunk in chunks)
    assert all(chunk["choices"] for chunk in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == (
        "echo: hello there"
    )
    [event] = ledger(gateway, key)
    assert (event["stream"], event["status"]) == (True, "ok")
    assert [event[name] for name in (*BUCKETS, "reasoning_tokens")] == [40, 16, 8, 20, 12]
    assert event["cost_usd"] == OPENAI_COST


def test_a_stream_whose_client_asked_gets_the_usage_with_its_details(
    gateway: RunningServer, fresh: FakeUpstream
) -> None:
    key = create_key(gateway, team="usage-asked")
    chunks = stream_chat(gateway, key, {"model": "up", "stream_options": {"include_usage": True}})
    usage_chunks = [c for c in chunks if c.get("usage")]
    assert len(usage_chunks) == 1
    assert usage_chunks[0]["choices"] == []
    assert usage_chunks[0]["usage"] == OPENAI_USAGE
    [event] = ledger(gateway, key)
    assert event["cost_usd"] == OPENAI_COST


def test_anthropic_and_gemini_streams_are_charged_their_own_conventions(
    gateway: RunningServer, fresh: FakeUpstream
) -> None:
    # Anthropic: input_tokens exclude the cache; Gemini: thoughts on top of candidates.
    fresh.usage_overrides["anthropic"] = {
        "input_tokens": 10,
        "cache_read_input_tokens": 32,
        "cache_creation_input_tokens": 64,
    }
    fresh.usage_overrides["gemini"] = {
        "promptTokenCount": 50,
        "cachedContentTokenCount": 30,
        "thoughtsTokenCount": 7,
    }
    key = create_key(gateway, team="usage-providers")
    stream_chat(gateway, key, {"model": "claude"})
    stream_chat(gateway, key, {"model": "gem"})
    events = {e["model"]: e for e in ledger(gateway, key, count=2)}
    words = 3  # the fake answers "echo: hello there", a token a word
    claude, gem = events["claude"], events["gem"]
    assert [claude[name] for name in (*BUCKETS, "reasoning_tokens")] == [106, 32, 64, words, 0]
    assert claude["cost_usd"] == 10 * INPUT + 32 * CACHE_READ + 64 * CACHE_WRITE + words * OUTPUT
    assert [gem[name] for name in (*BUCKETS, "reasoning_tokens")] == [50, 30, 0, words + 7, 7]
    assert gem["cost_usd"] == 20 * INPUT + 30 * CACHE_READ + words * OUTPUT + 7 * REASONING


def test_the_messages_stream_carries_cache_reads_and_writes(
    gateway: RunningServer, fresh: FakeUpstream
) -> None:
    key = create_key(gateway, team="usage-messages")
    with httpx.stream(
        "POST",
        f"{gateway.base_url}/v1/messages",
        json={
            "model": "up",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "hello there"}],
        },
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        timeout=30,
    ) as response:
        assert response.status_code == 200, response.read()
        events = sse_data(response)
    [delta] = [e for e in events if e["type"] == "message_delta"]
    assert delta["usage"] == {
        "input_tokens": 16,
        "output_tokens": 20,
        "cache_read_input_tokens": 16,
        "cache_creation_input_tokens": 8,
    }
    assert fresh.requests[-1].body["stream_options"] == {"include_usage": True}
    [event] = ledger(gateway, key)
    assert [event[name] for name in (*BUCKETS, "reasoning_tokens")] == [40, 16, 8, 20, 12]
    assert event["cost_usd"] == OPENAI_COST


def test_the_responses_stream_carries_cached_and_reasoning_details(
    gateway: RunningServer, fresh: FakeUpstream
) -> None:
    key = create_key(gateway, team="usage-responses")
    client = openai.OpenAI(api_key=key, base_url=f"{gateway.base_url}/v1", max_retries=0)
    with client.responses.stream(model="up", input="hello there") as stream:
        final = stream.get_final_response()
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (40, 20)
    assert final.usage.input_tokens_details.cached_tokens == 16
    assert final.usage.input_tokens_details.cache_write_tokens == 8
    assert final.usage.output_tokens_details.reasoning_tokens == 12
    [event] = ledger(gateway, key)
    assert [event[name] for name in (*BUCKETS, "reasoning_tokens")] == [40, 16, 8, 20, 12]
    assert event["cost_usd"] == OPENAI_COST


def test_spend_and_metrics_show_every_bucket(gateway: RunningServer, fresh: FakeUpstream) -> None:
    key = create_key(gateway, team="usage-spend")
    stream_chat(gateway, key, {"model": "up"})
    stream_chat(gateway, key, {"model": "up"})
    ledger(gateway, key, count=2)
    rows = admin(gateway, "GET", "/admin/spend?group_by=team&team=usage-spend").json()["rows"]
    assert [{k: v for k, v in row.items() if k.endswith("tokens")} for row in rows] == [
        {
            "prompt_tokens": 80,
            "completion_tokens": 40,
            "cached_tokens": 32,
            "cache_write_tokens": 16,
            "reasoning_tokens": 24,
        }
    ]
    assert rows[0]["cost_usd"] == 2 * OPENAI_COST
    metrics = httpx.get(f"{gateway.base_url}/metrics", timeout=10).text
    written = [
        line
        for line in metrics.splitlines()
        if line.startswith("gatehouse_tokens_total{")
        and 'team="usage-spend"' in line
        and 'type="cache_write"' in line
    ]
    assert len(written) == 1
    assert float(written[0].rsplit(" ", 1)[1]) == 16
