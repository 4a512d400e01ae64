"""Retries, backoff, breakers and fallbacks, with scripted in-process providers and a fake clock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from gatehouse.core.config import RouterConfig
from gatehouse.core.errors import (
    ContentPolicyError,
    ContextLengthExceededError,
    GatehouseError,
    InvalidRequestError,
    RateLimitError,
    UpstreamError,
)
from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from gatehouse.gateway import CallContext, ModelGroup, ModelRegistry
from gatehouse.gateway.routing import CircuitBreaker, Deployment, DeploymentStats
from gatehouse.gateway.routing.capacity import Capacity
from gatehouse.gateway.routing.router import Router
from gatehouse.providers.base import ModelInfo

from .fakes import EchoChat


def failing(error: GatehouseError, *, retryable: bool = True) -> GatehouseError:
    error.retryable = retryable
    return error


@dataclass
class Scripted(EchoChat):
    """Fails with the scripted errors first, then answers; counts its calls."""

    script: list[GatehouseError] = field(default_factory=list)
    calls: int = 0
    mid_stream: GatehouseError | None = None

    def __post_init__(self) -> None:
        super().__init__(self.name)

    name: str = "x"

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        reply = await super().complete(request)
        return reply.model_copy(update={"model": self.name})

    async def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        async for chunk in super().stream(request):
            yield chunk
            if self.mid_stream is not None:
                raise self.mid_stream


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def group(
    name: str, *providers: Scripted, retries: int = 2, breaker_failures: int = 2, **kwargs: object
) -> ModelGroup:
    deployments = [
        Deployment(
            id=p.name,
            group=name,
            provider=p,
            config=None,
            breaker=CircuitBreaker(failures=breaker_failures, window=60, cooldown=30),
            stats=DeploymentStats(alpha=0.5),
            capacity=Capacity(target_rps=None, max_in_flight=64, queue_size=8, queue_timeout=1),
        )
        for p in providers
    ]
    info = ModelInfo(id=name, kind="chat", owned_by="test", context_window=0)
    return ModelGroup(
        name=name,
        info=info,
        deployments=deployments,
        strategy="least_inflight",
        num_retries=retries,
        **kwargs,  # type: ignore[arg-type]
    )


def router(*groups: ModelGroup, clock: Clock) -> Router:
    config = RouterConfig(backoff_base=0.1, backoff_max=1.0, max_retry_after=5.0)
    return Router(
        ModelRegistry(groups=groups), config, clock=clock, sleep=clock.sleep, rng=random.Random(3)
    )


def request(model: str, text: str = "hi there", **extra: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    )


def ctx(req: ChatCompletionRequest) -> CallContext:
    return CallContext(request_id="r", endpoint="chat", request=req)


def server_error() -> GatehouseError:
    return failing(UpstreamError("boom"))


async def test_retries_a_retryable_failure_on_another_deployment() -> None:
    clock = Clock()
    a = Scripted(name="a", script=[server_error()])
    b = Scripted(name="b")
    r = router(group("g", a, b), clock=clock)
    req = request("g")
    for _ in range(4):  # whichever is picked first, a fails once and b answers
        reply = await r.complete(ctx(req), req)
        assert reply.model in {"a", "b"}
    assert a.calls >= 1
    assert len(clock.slept) == 1


async def test_backoff_is_full_jitter_below_the_exponential_ceiling() -> None:
    clock = Clock()
    only = Scripted(name="only", script=[server_error(), server_error()])
    r = router(group("g", only, retries=2, breaker_failures=5), clock=clock)
    req = request("g")
    await r.complete(ctx(req), req)
    assert only.calls == 3
    assert 0 <= clock.slept[0] <= 0.1
    assert 0 <= clock.slept[1] <= 0.2


async def test_gives_up_after_the_retry_budget_with_the_last_error() -> None:
    clock = Clock()
    only = Scripted(name="only", script=[server_error() for _ in range(5)])
    r = router(group("g", only, retries=1, breaker_failures=5), clock=clock)
    req = request("g")
    with pytest.raises(UpstreamError):
        await r.complete(ctx(req), req)
    assert only.calls == 2


async def test_client_errors_are_not_retried_or_fallen_back() -> None:
    clock = Clock()
    a = Scripted(name="a", script=[InvalidRequestError("bad")])
    other = Scripted(name="other")
    r = router(group("g", a, retries=3, fallbacks=["h"]), group("h", other), clock=clock)
    req = request("g")
    with pytest.raises(InvalidRequestError):
        await r.complete(ctx(req), req)
    assert (a.calls, other.calls) == (1, 0)


async def test_retry_after_cools_the_deployment_down() -> None:
    clock = Clock()
    limited = Scripted(name="limited", script=[failing(RateLimitError("slow", retry_after=20))])
    spare = Scripted(name="spare")
    r = router(group("g", limited, spare), clock=clock)
    req = request("g")
    for _ in range(3):
        await r.complete(ctx(req), req)
    # After the 429 the limited deployment rests for 20 s; everything goes to the spare.
    assert limited.calls == 1
    assert spare.calls == 3
    clock.now += 21
    limited_before = limited.calls
    for _ in range(4):
        await r.complete(ctx(req), req)
    assert limited.calls > limited_before


async def test_retry_after_is_waited_out_when_no_other_deployment_is_free() -> None:
    clock = Clock()
    only = Scripted(name="only", script=[failing(RateLimitError("slow", retry_after=2))])
    r = router(group("g", only, retries=1), clock=clock)
    req = request("g")
    await r.complete(ctx(req), req)
    assert sum(clock.slept) == pytest.approx(2.0)


async def test_fallbacks_fire_in_order() -> None:
    clock = Clock()
    a = Scripted(name="a", script=[server_error()])
    b = Scripted(name="b", script=[server_error()])
    c = Scripted(name="c")
    r = router(
        group("first", a, retries=0, fallbacks=["second", "third"]),
        group("second", b, retries=0),
        group("third", c, retries=0),
        clock=clock,
    )
    req = request("first")
    reply = await r.complete(ctx(req), req)
    assert reply.model == "c"
    assert (a.calls, b.calls, c.calls) == (1, 1, 1)


async def test_context_window_fallback_before_and_after_the_call() -> None:
    clock = Clock()
    small = Scripted(name="small")
    large = Scripted(name="large")
    g = group("small", small, context_window_fallbacks=["large"])
    g.deployments[0].context_window = 50
    r = router(g, group("large", large), clock=clock)
    long_request = request("small", "word " * 400)
    assert (await r.complete(ctx(long_request), long_request)).model == "large"
    assert small.calls == 0
    # The estimate can be wrong: the upstream's own context error also falls back.
    small.script.append(ContextLengthExceededError("too long"))
    short = request("small", "short")
    assert (await r.complete(ctx(short), short)).model == "large"
    assert small.calls == 1


async def test_content_policy_fallback() -> None:
    clock = Clock()
    strict = Scripted(name="strict", script=[ContentPolicyError("refused")])
    lenient = Scripted(name="lenient")
    r = router(
        group("strict", strict, content_policy_fallbacks=["lenient"]),
        group("lenient", lenient),
        clock=clock,
    )
    req = request("strict")
    assert (await r.complete(ctx(req), req)).model == "lenient"


async def test_breaker_stops_traffic_then_probes_and_recovers() -> None:
    clock = Clock()
    flaky = Scripted(name="flaky", script=[server_error(), server_error()])
    steady = Scripted(name="steady")
    g = group("g", flaky, steady, retries=1)
    g.strategy = "weighted"
    r = router(g, clock=clock)
    req = request("g")
    while flaky.calls < 2:
        await r.complete(ctx(req), req)
    assert g.deployments[0].breaker.state(clock.now) == "open"
    calls = flaky.calls
    for _ in range(10):
        await r.complete(ctx(req), req)
    assert flaky.calls == calls  # no traffic while open
    clock.now += 31
    while flaky.calls == calls:
        await r.complete(ctx(req), req)
    assert g.deployments[0].breaker.state(clock.now) == "closed"


async def test_stream_retries_until_the_first_chunk_only() -> None:
    clock = Clock()
    a = Scripted(name="a", script=[server_error()])
    r = router(group("g", a), clock=clock)
    req = request("g", "one two three", stream=True)
    stream = await r.stream(ctx(req), req)
    words = [c.choices[0].delta.content async for c in stream if c.choices]
    assert a.calls == 2
    assert "two" in words

    broken = Scripted(name="broken", mid_stream=failing(UpstreamError("cut")))
    r = router(group("h", broken), clock=clock)
    req = request("h", "one two three", stream=True)
    stream = await r.stream(ctx(req), req)
    with pytest.raises(UpstreamError):
        async for _ in stream:
            pass
    assert broken.calls == 1  # never retried after bytes went out
    assert r.registry.group("h").deployments[0].in_flight == 0


def lone(retries: int = 2) -> tuple[Scripted, ModelGroup]:
    """A group whose only deployment is picked by ``weighted`` (issue 11, item 10)."""
    only = Scripted(name="only")
    g = group("g", only, retries=retries, breaker_failures=5)
    g.strategy = "weighted"
    return only, g


async def test_a_cooldown_pushed_further_while_waiting_is_waited_out_again() -> None:
    clock = Clock()
    only, g = lone()
    only.script.append(failing(RateLimitError("slow", retry_after=1)))

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        if len(clock.slept) == 2:  # another request's 429 lands while this one waits
            g.deployments[0].cooldown_until = clock.now + 1

    r = Router(ModelRegistry(groups=[g]), RouterConfig(max_retry_after=5), clock=clock, sleep=sleep)
    req = request("g")
    assert (await r.complete(ctx(req), req)).model == "only"
    assert only.calls == 2
    assert len(clock.slept) == 3  # backoff, the first Retry-After, then the pushed one


async def test_a_probe_in_flight_is_waited_for_then_the_group_is_a_503() -> None:
    clock = Clock()
    only, g = lone()
    breaker = g.deployments[0].breaker
    for _ in range(5):
        breaker.on_failure(clock.now)
    clock.now += 31
    breaker.on_attempt(clock.now)  # another request is the half-open probe
    r = router(g, clock=clock)
    req = request("g")
    with pytest.raises(GatehouseError) as caught:
        await r.complete(ctx(req), req)
    assert caught.value.http_status == 503
    assert (caught.value.retry_after or 0) >= 1
    assert caught.value.retryable
    assert sum(clock.slept) == pytest.approx(5.0, abs=0.06)  # max_retry_after, in short looks
    assert only.calls == 0

    breaker.on_success()  # the probe came back: the next request goes through
    assert (await r.complete(ctx(req), req)).model == "only"


async def test_a_retry_after_past_the_deadline_is_a_429_that_says_when() -> None:
    clock = Clock()
    only, g = lone(retries=1)
    only.script.append(failing(RateLimitError("slow", retry_after=60)))
    r = router(g, clock=clock)
    req = request("g")
    with pytest.raises(RateLimitError) as caught:
        await r.complete(ctx(req), req)
    assert (caught.value.retry_after or 0) >= 59
    assert only.calls == 1


async def test_a_lone_deployment_rate_limiting_half_its_calls_never_gives_a_500() -> None:
    clock = Clock()
    only, g = lone()
    rng = random.Random(11)

    async def complete(request: ChatCompletionRequest) -> ChatCompletion:
        only.calls += 1
        await asyncio.sleep(0)
        if rng.random() < 0.5:
            raise failing(RateLimitError("slow", retry_after=1))
        return await EchoChat.complete(only, request)

    async def sleep(seconds: float) -> None:
        clock.now += seconds
        await asyncio.sleep(0)

    only.complete = complete  # type: ignore[method-assign]
    r = Router(ModelRegistry(groups=[g]), RouterConfig(), clock=clock, sleep=sleep)
    req = request("g")
    outcomes = await asyncio.gather(
        *(r.complete(ctx(req), req) for _ in range(100)), return_exceptions=True
    )
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) < 100
    for error in errors:
        assert isinstance(error, GatehouseError), repr(error)
        assert error.http_status in (429, 503)
        assert error.retry_after is not None
