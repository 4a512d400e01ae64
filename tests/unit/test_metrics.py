"""/metrics after known traffic: request counts, tokens and cost equal the ledger exactly."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gatehouse.core.config import RouterConfig
from gatehouse.core.errors import (
    AdmissionTimeoutError,
    AuthenticationError,
    BudgetExceededError,
    ContentPolicyError,
    ContextLengthExceededError,
    ModelNotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamAuthError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
    error_type,
)
from gatehouse.core.observation import RequestRecord
from gatehouse.core.types import ChatCompletion, ChatCompletionRequest, Usage
from gatehouse.gateway import ModelRegistry
from gatehouse.gateway.routing.router import Router
from gatehouse.observability import Metrics

from .fakes import EchoChat
from .governed import Governed, governed_app
from .test_router import Clock, Scripted, ctx, group, request, server_error

HELLO = [{"role": "user", "content": "hello"}]
PRICES = {
    "test/echo": {"input_cost_per_token": 1, "output_cost_per_token": 2},
    "test/think": {
        "input_cost_per_token": 1,
        "output_cost_per_token": 2,
        "cache_read_input_token_cost": 0.5,
    },
}


class ThinkingChat(EchoChat):
    """Reports cached prompt tokens and reasoning tokens, as OpenAI's usage does."""

    def __init__(self) -> None:
        super().__init__("test/think")

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        answer = await super().complete(request)
        answer.usage = Usage.model_validate(
            {
                "prompt_tokens": 10,
                "completion_tokens": 20,
                "total_tokens": 30,
                "prompt_tokens_details": {"cached_tokens": 4},
                "completion_tokens_details": {"reasoning_tokens": 15},
            }
        )
        return answer


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    metrics = Metrics()
    async for governed in governed_app(
        tmp_path, providers=[ThinkingChat()], metrics=metrics, pricing={"models": PRICES}
    ):
        yield governed


@pytest.fixture
async def keyed(tmp_path: Path) -> AsyncIterator[Governed]:
    """With the response cache and the opt-in per-key series."""
    metrics = Metrics(per_key=True)
    async for governed in governed_app(
        tmp_path,
        providers=[ThinkingChat()],
        metrics=metrics,
        pricing={"models": PRICES},
        cache={"enabled": True},
    ):
        yield governed


Samples = dict[str, list[tuple[dict[str, str], float]]]


async def scrape(gov: Governed) -> Samples:
    response = await gov.http.get("/metrics")
    assert response.status_code == 200
    return parse(response.text)


def parse(text: str) -> Samples:
    samples: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        value
        for found, value in samples.get(name, [])
        if all(found.get(k) == v for k, v in labels.items())
    )


async def test_request_counts_tokens_and_cost_equal_the_ledger(keyed: Governed) -> None:
    gov = keyed
    ops_key = await gov.new_key(team="ops")
    ops = gov.sdk(ops_key)
    await ops.chat.completions.create(model="default", messages=HELLO)
    for _ in range(2):  # a miss, then a hit answered by the cache
        await ops.chat.completions.create(model="default", messages=HELLO, temperature=0)
    stream = await ops.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    async for _ in stream:
        pass
    await ops.embeddings.create(model="test/embed", input="x")
    await ops.chat.completions.create(model="test/think", messages=HELLO)
    gov.chat.fail_with = UpstreamAuthError("the upstream refused the gateway's key")
    with pytest.raises(openai.InternalServerError):
        await ops.chat.completions.create(model="default", messages=HELLO)
    gov.chat.fail_with = None

    limited = gov.sdk(await gov.new_key(team="research", limits={"rpm": 1}))
    await limited.chat.completions.create(model="default", messages=HELLO)
    with pytest.raises(openai.RateLimitError):
        await limited.chat.completions.create(model="default", messages=HELLO)
    poor = gov.sdk(await gov.new_key(team="research", budget={"max_usd": 1, "hard": True}))
    with pytest.raises(openai.RateLimitError, match="Budget exceeded"):
        await poor.chat.completions.create(model="default", messages=HELLO)

    await gov.governance.shipper.drain()
    events = (await gov.admin("GET", "/admin/ledger?limit=1000")).json()["events"]
    assert len(events) == 10
    assert sum(e["cache_hit"] for e in events) == 1
    samples = await scrape(gov)

    assert total(samples, "gatehouse_requests_total") == len(events)
    for status in {e["http_status"] for e in events}:
        expected = sum(e["http_status"] == status for e in events)
        assert total(samples, "gatehouse_requests_total", status=str(status)) == expected
    for team in ("ops", "research"):
        mine = [e for e in events if e["team"] == team]
        assert total(samples, "gatehouse_tokens_total", team=team, type="input") == sum(
            e["prompt_tokens"] for e in mine
        )
        assert total(samples, "gatehouse_tokens_total", team=team, type="output") == sum(
            e["completion_tokens"] for e in mine
        )
        assert total(samples, "gatehouse_tokens_total", team=team, type="cached") == sum(
            e["cached_tokens"] for e in mine
        )
        assert total(samples, "gatehouse_cost_usd_total", team=team) == sum(
            e["cost_usd"] for e in mine
        )
    assert total(samples, "gatehouse_cost_usd_total") == sum(e["cost_usd"] for e in events) > 0
    streamed = next(e for e in events if e["stream"])
    assert streamed["completion_tokens"] == 3  # the streamed call's tokens are in the sums
    assert total(samples, "gatehouse_tokens_total", type="cached", group="test/think") == 4
    assert total(samples, "gatehouse_tokens_total", type="reasoning", group="test/think") == 15
    assert total(samples, "gatehouse_tokens_total", group="test/embed", type="input") == 1

    assert total(samples, "gatehouse_upstream_errors_total") == 1
    assert (
        total(
            samples,
            "gatehouse_upstream_errors_total",
            group="test/echo",
            deployment="test/echo",
            type="auth",
        )
        == 1
    )
    assert total(samples, "gatehouse_refusals_total", team="research", reason="rate_limit") == 1
    assert total(samples, "gatehouse_refusals_total", team="research", reason="budget") == 1
    assert total(samples, "gatehouse_outbox_backlog") == 0
    assert total(samples, "gatehouse_cache_lookups_total", result="hit") == 1
    assert total(samples, "gatehouse_cache_lookups_total", result="miss") == 1

    # The opt-in per-key series, by key id, agree with the ledger too.
    for key_id in {e["key_id"] for e in events}:
        mine = [e for e in events if e["key_id"] == key_id]
        assert total(samples, "gatehouse_key_requests_total", key=key_id) == len(mine)
        assert total(samples, "gatehouse_key_tokens_total", key=key_id, type="input") == sum(
            e["prompt_tokens"] for e in mine
        )
        assert total(samples, "gatehouse_key_cost_usd_total", key=key_id) == sum(
            e["cost_usd"] for e in mine
        )
    assert ops_key.split("_", 1)[1] not in (await gov.http.get("/metrics")).text


async def test_no_label_carries_a_key_a_user_or_a_prompt(gov: Governed) -> None:
    key = await gov.new_key(team="ops", user="alice@example.com")
    await gov.sdk(key).chat.completions.create(
        model="default", messages=[{"role": "user", "content": "secret plans"}]
    )
    text = (await gov.http.get("/metrics")).text
    for leaked in (key, key[3:19], "alice@example.com", "secret plans"):
        assert leaked not in text


async def test_a_caller_cannot_add_series_by_inventing_model_names(gov: Governed) -> None:
    sdk = gov.sdk(await gov.new_key())
    for name in ("made-up-1", "made-up-2"):
        with pytest.raises(openai.NotFoundError):
            await sdk.chat.completions.create(model=name, messages=HELLO)
    for name in ("made-up-3", "default"):  # without a key
        response = await gov.http.post(
            "/v1/chat/completions", json={"model": name, "messages": HELLO}
        )
        assert response.status_code == 401
    await sdk.chat.completions.create(model="default", messages=HELLO)
    samples = await scrape(gov)
    labels = {found["model"] for found, _ in samples["gatehouse_requests_total"]}
    assert labels == {"unknown", "default"}
    assert total(samples, "gatehouse_requests_total", model="unknown", status="404") == 2


async def test_retries_fallbacks_and_upstream_errors_are_counted() -> None:
    metrics = Metrics()
    clock = Clock()
    a = Scripted(name="a", script=[server_error(), server_error()])
    b = Scripted(name="b")
    r = Router(
        ModelRegistry(
            groups=[group("first", a, retries=1, fallbacks=["second"]), group("second", b)]
        ),
        RouterConfig(backoff_base=0.1, backoff_max=1.0),
        clock=clock,
        sleep=clock.sleep,
        observer=metrics,
    )
    req = request("first")
    call = ctx(req)
    assert (await r.complete(call, req)).model == "b"
    assert (call.group, call.deployment, call.retries, call.fallbacks) == ("second", "b", 1, 1)
    samples = parse(metrics.render().decode())
    assert total(samples, "gatehouse_retries_total", group="first") == 1
    assert total(samples, "gatehouse_fallbacks_total", group="first") == 1
    assert total(samples, "gatehouse_upstream_errors_total", deployment="a", type="server") == 2


def test_cache_lookups_are_counted_by_result() -> None:
    metrics = Metrics()
    for cache in ("hit", "miss", "miss", "bypass", None):
        metrics.request_done(record(cache=cache))
    samples = parse(metrics.render().decode())
    assert total(samples, "gatehouse_cache_lookups_total", result="hit") == 1
    assert total(samples, "gatehouse_cache_lookups_total", result="miss") == 2
    assert total(samples, "gatehouse_cache_lookups_total") == 3


def record(**fields: Any) -> RequestRecord:
    values: dict[str, Any] = {
        "request_id": "r",
        "endpoint": "chat",
        "model": "m",
        "group": "m",
        "deployment": "m",
        "principal": None,
        "team": None,
        "status": 200,
        "error_type": None,
        "error_code": None,
        "refusal": None,
        "seconds": 0.01,
        "ttft": None,
        "input_tokens": 0,
        "cached_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": 0.0,
        "cache": None,
        "coalesced": False,
        "retries": 0,
        "fallbacks": 0,
        "stream": False,
    }
    return RequestRecord(**{**values, **fields})


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RateLimitError("x"), "rate_limit"),
        (UpstreamTimeoutError("x"), "timeout"),
        (AdmissionTimeoutError("x"), "timeout"),
        (TimeoutError(), "timeout"),
        (UpstreamAuthError("x"), "auth"),
        (AuthenticationError(), "auth"),
        (ContentPolicyError("x"), "content_policy"),
        (ContextLengthExceededError("x"), "bad_request"),
        (ModelNotFoundError("m"), "bad_request"),
        (UpstreamConnectionError("x"), "connection"),
        (ConnectionResetError(), "connection"),
        (UpstreamError("x", status=503), "server"),
        (ServiceUnavailableError("x"), "server"),
        (BudgetExceededError("x"), "other"),
        (ValueError("rate limit timeout"), "other"),  # the message never decides
    ],
)
def test_error_types_come_from_the_class(error: BaseException, expected: str) -> None:
    assert error_type(error) == expected
