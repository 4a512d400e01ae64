"""Routing against a fake upstream that misbehaves on request, through the official SDKs."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import Behaviour, FakeUpstream

USER = [{"role": "user", "content": "hello there"}]


def deployment(upstream: FakeUpstream, model: str, provider: str = "openai_compat") -> str:
    base = f"{upstream.base_url}/v1" if provider == "openai_compat" else upstream.base_url
    return f"{{provider: {provider}, model: {model}, base_url: '{base}', api_key_env: FAKE_KEY}}"


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("routing")
    config = root / "gatehouse.yaml"
    d = lambda model, provider="openai_compat": deployment(upstream, model, provider)  # noqa: E731
    config.write_text(
        f"""
router:
  num_retries: 2
  backoff_base: 0.01
  backoff_max: 0.05
  breaker: {{failures: 3, window: 60, cooldown: 1.0}}
models:
  - name: pair
    deployments: [{d("up-a")}, {d("up-b")}]
  - name: primary
    num_retries: 0
    fallbacks: [secondary, tertiary]
    deployments: [{d("up-primary")}]
  - name: secondary
    num_retries: 0
    deployments: [{d("up-secondary")}]
  - name: tertiary
    num_retries: 0
    deployments: [{d("up-tertiary")}]
  - name: guarded
    num_retries: 0
    deployments: [{d("up-guarded")}]
  - name: lonely
    deployments: [{d("up-lonely")}]
  - name: breaker
    deployments: [{d("up-flaky")}, {d("up-steady")}]
  - name: slow-start
    deployments:
      - {{provider: openai_compat, model: up-stall, base_url: '{upstream.base_url}/v1',
          timeout: {{first_token: 0.5}}}}
      - {{provider: openai_compat, model: up-quick, base_url: '{upstream.base_url}/v1',
          timeout: {{first_token: 0.5}}}}
  - name: claude
    deployments: [{d("claude-x", "anthropic")}]
  - name: gem
    deployments: [{d("gemini-x", "gemini")}]
"""
    )
    server = start_server(root / "data", env={"FAKE_KEY": "sk-fake"}, config=config)
    yield server
    stop_server(server)


@pytest.fixture
def client(gateway: RunningServer, upstream: FakeUpstream) -> openai.OpenAI:
    upstream.reset()
    return gateway.openai()


def deployments(gateway: RunningServer, group: str) -> dict[str, dict[str, object]]:
    view = httpx.get(f"{gateway.base_url}/admin/deployments").json()
    found = next(g for g in view["groups"] if g["name"] == group)
    return {d["model"]: d for d in found["deployments"]}


def test_models_lists_the_groups(client: openai.OpenAI) -> None:
    ids = {model.id for model in client.models.list()}
    assert {"pair", "primary", "claude", "gem", "local/smollm2"} <= ids


def test_a_retryable_failure_is_retried(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.then(Behaviour("status", status=500), Behaviour("reset"))
    reply = client.chat.completions.create(model="pair", messages=USER)
    assert reply.choices[0].message.content == "echo: hello there"
    assert upstream.count("chat") == 3
    assert upstream.requests[0].headers["Authorization"] == "Bearer sk-fake"


def test_retry_after_moves_traffic_to_the_other_deployment(
    client: openai.OpenAI, upstream: FakeUpstream, gateway: RunningServer
) -> None:
    upstream.then(Behaviour("status", status=429, retry_after=30))
    client.chat.completions.create(model="pair", messages=USER)
    limited = upstream.models()[0]
    for _ in range(6):
        client.chat.completions.create(model="pair", messages=USER)
    assert upstream.models()[1:] == [m for m in upstream.models()[1:] if m != limited]
    assert deployments(gateway, "pair")[limited]["cooldown_remaining_s"] > 20  # type: ignore[operator]


def test_fallbacks_fire_in_order(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.by_model["up-primary"] = Behaviour("status", status=503)
    upstream.by_model["up-secondary"] = Behaviour("reset")
    reply = client.chat.completions.create(model="primary", messages=USER)
    assert reply.choices[0].message.content == "echo: hello there"
    assert upstream.models() == ["up-primary", "up-secondary", "up-tertiary"]


def test_client_errors_from_upstream_are_not_retried(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    upstream.by_model["up-guarded"] = Behaviour(
        "status",
        status=400,
        error_body={
            "error": {
                "message": "bad tool",
                "type": "invalid_request_error",
                "param": "tools",
                "code": "invalid_tool",
            }
        },
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="guarded", messages=USER)
    assert caught.value.code == "invalid_tool"
    assert caught.value.body["upstream_request_id"] == "up-1"  # type: ignore[index]
    assert upstream.count() == 1


def test_upstream_auth_failure_is_a_502_for_the_operator(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    upstream.by_model["up-guarded"] = Behaviour("status", status=401)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="guarded", messages=USER)
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_auth_failed"  # type: ignore[attr-defined]
    assert "sk-fake" not in caught.value.response.text


def test_a_lone_deployment_cooling_down_is_never_a_500(
    gateway: RunningServer, upstream: FakeUpstream
) -> None:
    # Half its calls are a 429 with Retry-After: 1, and three failures open its
    # breaker for a second: often nothing of the group can take a request.
    upstream.reset()
    upstream.by_model["up-lonely"] = Behaviour("status", status=429, retry_after=1, probability=0.5)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=60) as http:
            body = {"model": "lonely", "messages": USER}
            return await asyncio.gather(
                *(http.post("/v1/chat/completions", json=body) for _ in range(40))
            )

    responses = asyncio.run(burst())
    assert any(r.status_code == 200 for r in responses)
    for response in responses:
        if response.status_code != 200:
            assert response.status_code in (429, 503), response.text
            assert int(response.headers["retry-after"]) >= 1
            assert {"message", "type", "code"} <= set(response.json()["error"])


def test_breaker_stops_traffic_to_a_failing_deployment_and_recovers(
    client: openai.OpenAI, upstream: FakeUpstream, gateway: RunningServer
) -> None:
    upstream.by_model["up-flaky"] = Behaviour("status", status=500)
    for _ in range(30):
        reply = client.chat.completions.create(model="breaker", messages=USER)
        assert reply.choices[0].message.content  # clients never see the failures
    flaky_calls = upstream.models().count("up-flaky")
    assert flaky_calls == 3  # the breaker opened after three failures
    assert deployments(gateway, "breaker")["up-flaky"]["state"] in {"open", "half_open"}
    del upstream.by_model["up-flaky"]
    time.sleep(1.1)  # the breaker's cooldown
    for _ in range(40):
        client.chat.completions.create(model="breaker", messages=USER)
        if upstream.models().count("up-flaky") > flaky_calls:
            break
    assert upstream.models().count("up-flaky") > flaky_calls
    assert deployments(gateway, "breaker")["up-flaky"]["state"] == "closed"


def test_a_stream_cut_midway_ends_with_an_error_not_a_hang(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    upstream.then(Behaviour("cut", cut_after=3))
    stream = client.with_options(timeout=10).chat.completions.create(
        model="pair", messages=[{"role": "user", "content": "one two three four five"}], stream=True
    )
    received: list[object] = []
    with pytest.raises(openai.APIError, match="ended the stream"):
        received.extend(stream)
    assert received  # the first chunks arrived; then the error, never a retry
    assert upstream.count() == 1


def test_a_stall_before_the_first_token_is_retried(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    upstream.by_model["up-stall"] = Behaviour("stall")
    for _ in range(3):
        stream = client.chat.completions.create(model="slow-start", messages=USER, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "echo: hello there"


def test_client_disconnect_cancels_the_upstream_stream(
    gateway: RunningServer, upstream: FakeUpstream
) -> None:
    upstream.reset()
    upstream.default = Behaviour(chunk_delay=0.2)
    words = " ".join(f"w{i}" for i in range(30))
    body = {"model": "pair", "stream": True, "messages": [{"role": "user", "content": words}]}
    with httpx.stream("POST", f"{gateway.base_url}/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
    deadline = time.monotonic() + 5
    while upstream.cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.cancelled == 1
    assert upstream.completed_streams == 0


def test_anthropic_sdk_reaches_any_deployment(
    gateway: RunningServer, upstream: FakeUpstream
) -> None:
    upstream.reset()
    sdk = anthropic.Anthropic(base_url=gateway.base_url, api_key="unused", max_retries=0)
    message = sdk.messages.create(
        model="pair",
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": "hi from anthropic"}],
    )
    assert message.content[0].text == "echo: hi from anthropic"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 4
    assert upstream.requests[-1].body["messages"][0] == {"role": "system", "content": "Be brief."}

    with sdk.messages.stream(
        model="claude", max_tokens=64, messages=[{"role": "user", "content": "stream it"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: stream it"
    assert final.usage.output_tokens == 3
    assert final.usage.cache_read_input_tokens == 2

    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.create(
            model="absent", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.BadRequestError):
        sdk.messages.create(model="pair", max_tokens=0, messages=[{"role": "user", "content": "x"}])


def test_anthropic_and_gemini_upstreams_through_the_openai_sdk(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    for model in ("claude", "gem"):
        reply = client.chat.completions.create(model=model, messages=USER, max_tokens=20)
        assert reply.choices[0].message.content == "echo: hello there"
        assert reply.usage is not None
        assert reply.usage.completion_tokens == 3
        stream = client.chat.completions.create(
            model=model, messages=USER, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
            "echo: hello there"
        )
        assert chunks[-1].usage is not None
    anthropic_call = next(r for r in upstream.requests if r.path == "/v1/messages")
    assert anthropic_call.headers["x-api-key"] == "sk-fake"
    assert anthropic_call.body["max_tokens"] == 20
    gemini_call = next(r for r in upstream.requests if "gemini-x" in r.path)
    assert gemini_call.headers["x-goog-api-key"] == "sk-fake"


def test_litellm_config_runs_as_it_is(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.reset()
    config = tmp_path / "litellm.yaml"
    config.write_text(
        f"""
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: {upstream.base_url}/v1
      api_key: os.environ/FAKE_KEY
      rpm: 100
router_settings:
  routing_strategy: simple-shuffle
  num_retries: 1
  redis_host: localhost
litellm_settings:
  drop_params: true
"""
    )
    server = start_server(tmp_path / "data", env={"FAKE_KEY": "sk-lite"}, config=config)
    try:
        reply = server.openai().chat.completions.create(model="gpt-4o", messages=USER)
        assert reply.choices[0].message.content == "echo: hello there"
        assert upstream.requests[-1].headers["Authorization"] == "Bearer sk-lite"
        log = server.log.read_text()
        assert "router_settings.redis_host" in log
        assert "litellm_settings.drop_params" in log
        assert "sk-lite" not in log
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def narrow(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A deployment that admits one request at a time and queues briefly."""
    root = tmp_path_factory.mktemp("admission")
    config = root / "gatehouse.yaml"
    config.write_text(
        f"""
router:
  num_retries: 0
  admission: {{queue_size: 50, queue_timeout: 0.5}}
models:
  - name: narrow
    deployments:
      - {{provider: openai_compat, model: up-narrow, base_url: '{upstream.base_url}/v1',
          max_in_flight: 1}}
"""
    )
    server = start_server(root / "data", config=config)
    yield server
    stop_server(server)


def test_admission_queue_refuses_past_its_deadline(
    narrow: RunningServer, upstream: FakeUpstream
) -> None:
    upstream.reset()
    upstream.default = Behaviour(delay=1.5)
    body = {"model": "narrow", "messages": USER}
    url = f"{narrow.base_url}/v1/chat/completions"
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(httpx.post, url, json=body, timeout=10)
        time.sleep(0.2)
        refused = httpx.post(url, json=body, timeout=10)
        assert slow.result().status_code == 200
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "admission_timeout"
    assert int(refused.headers["retry-after"]) >= 1
    metrics = httpx.get(f"{narrow.base_url}/metrics").text
    assert 'gatehouse_admission_rejected{deployment="narrow#0",group="narrow"} 1.0' in metrics
    assert "gatehouse_admission_limit" in metrics


def test_admission_never_loses_an_accepted_request(
    narrow: RunningServer, upstream: FakeUpstream
) -> None:
    upstream.reset()
    upstream.default = Behaviour(delay=0.02)
    client = narrow.openai()
    import concurrent.futures

    def ask(i: int) -> str:
        # On a starved machine the 0.5 s queue deadline may pass: such a request is
        # refused before it reaches the upstream (never accepted), so it is asked again.
        while True:
            try:
                reply = client.chat.completions.create(
                    model="narrow", messages=[{"role": "user", "content": f"n{i}"}]
                )
            except openai.APIStatusError as exc:
                if exc.status_code != 503:
                    raise
                continue
            return reply.choices[0].message.content or ""

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(16)))
    assert answers == [f"echo: n{i}" for i in range(16)]
    assert upstream.count() == 16  # every accepted request reached it once; no refused one did


def test_capacity_reads_live_latencies(narrow: RunningServer, upstream: FakeUpstream) -> None:
    import subprocess
    import sys

    upstream.reset()
    upstream.default = Behaviour(delay=0.05)
    narrow.openai().chat.completions.create(model="narrow", messages=USER)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gatehouse",
            "capacity",
            "--rate",
            "100",
            "--url",
            narrow.base_url,
            "--group",
            "narrow",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    row = result.stdout.splitlines()[1].split()
    assert row[:2] == ["narrow", "narrow#0"]
    hold_ms = deployments(narrow, "narrow")["up-narrow"]["hold_ms"]
    assert isinstance(hold_ms, float)
    assert hold_ms > 0
    assert int(row[4]) == math.ceil(100 * hold_ms / 1000 * 1.2)  # Little's law, with headroom
