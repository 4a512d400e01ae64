"""Request coalescing: identical in-flight requests share one upstream call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gatehouse.core.errors import ServiceUnavailableError
from gatehouse.core.types import ChatCompletion, StreamOptions
from gatehouse.gateway import CallContext
from gatehouse.gateway.cache import Coalescer

from .cache_fakes import ALICE, BOB, CountingChat, collect, context, gateway

DET = {"temperature": 0}


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until ``condition`` holds (no wall-clock waiting)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


@pytest.fixture
def upstream() -> CountingChat:
    chat = CountingChat()
    chat.gate = asyncio.Event()
    return chat


async def test_fifty_identical_requests_make_one_upstream_call(upstream: CountingChat) -> None:
    gw = gateway(upstream, [Coalescer()])
    contexts = [context(DET) for _ in range(50)]
    tasks = [asyncio.create_task(gw.handle(ctx)) for ctx in contexts]
    await until(lambda: upstream.calls == 1 and sum(c.coalesced for c in contexts) == 49)
    assert upstream.gate is not None
    upstream.gate.set()
    results = await asyncio.gather(*tasks)
    assert upstream.calls == 1
    assert all(isinstance(r, ChatCompletion) for r in results)
    assert {r.choices[0].message.content for r in results} == {"hello there"}  # type: ignore[union-attr]
    assert all(ctx.usage is not None for ctx in contexts)
    assert sum(ctx.response_headers.get("x-gatehouse-coalesced") == "1" for ctx in contexts) == 49


async def test_fifty_identical_streams_fan_out_from_one_call(upstream: CountingChat) -> None:
    gw = gateway(upstream, [Coalescer()])
    body = {**DET, "stream": True, "messages": [{"role": "user", "content": "a b c"}]}
    contexts = [context(body) for _ in range(50)]
    # Half ask for usage: each caller gets the usage chunk only if it asked.
    for ctx in contexts[25:]:
        options = StreamOptions(include_usage=True)
        ctx.request = ctx.request.model_copy(update={"stream_options": options})
    streams = [await gw.handle(ctx) for ctx in contexts]
    tasks = [asyncio.create_task(collect(s)) for s in streams]
    await until(lambda: upstream.calls == 1)
    assert upstream.gate is not None
    upstream.gate.set()
    results = await asyncio.gather(*tasks)
    assert upstream.calls == 1
    plain = [c.model_dump() for c in results[0]]
    assert all([c.model_dump() for c in r] == plain for r in results[:25])
    for chunks in results[25:]:
        assert [c.model_dump() for c in chunks[:-1]] == plain
        assert chunks[-1].usage is not None
        assert chunks[-1].choices == []


async def test_an_upstream_error_reaches_every_caller(upstream: CountingChat) -> None:
    upstream.fail_with = ServiceUnavailableError("down")
    gw = gateway(upstream, [Coalescer()])
    tasks = [asyncio.create_task(gw.handle(context(DET))) for _ in range(5)]
    assert upstream.gate is not None
    upstream.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, ServiceUnavailableError) for r in results)


async def test_leader_leaving_does_not_cancel_the_others(upstream: CountingChat) -> None:
    gw = gateway(upstream, [Coalescer()])
    leader = asyncio.create_task(gw.handle(context(DET)))
    follower = asyncio.create_task(gw.handle(context(DET)))
    await until(lambda: upstream.calls == 1)
    await asyncio.sleep(0)
    leader.cancel()
    assert upstream.gate is not None
    upstream.gate.set()
    assert isinstance(await follower, ChatCompletion)
    assert leader.cancelled()
    assert upstream.cancelled == 0


async def test_upstream_call_is_cancelled_when_every_caller_leaves(upstream: CountingChat) -> None:
    coalescer = Coalescer()
    gw = gateway(upstream, [coalescer])
    tasks = [asyncio.create_task(gw.handle(context(DET))) for _ in range(3)]
    await until(lambda: upstream.calls == 1)
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    await until(lambda: upstream.cancelled == 1 and coalescer.in_flight == 0)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (context(DET), context({"temperature": 0.5})),  # different request
        (context({"temperature": 0.9}), context({"temperature": 0.9})),  # not deterministic
        (context(DET, principal=ALICE), context(DET, principal=BOB)),  # other caller
        (context(DET), context({**DET, "stream": True})),  # other form
    ],
)
async def test_what_does_not_coalesce(
    upstream: CountingChat, first: CallContext, second: CallContext
) -> None:
    gw = gateway(upstream, [Coalescer()])
    handles: list[Awaitable[object]] = [gw.handle(first), gw.handle(second)]
    tasks = [asyncio.create_task(h) for h in handles]  # type: ignore[arg-type]
    await until(lambda: upstream.calls == 2)
    assert upstream.gate is not None
    upstream.gate.set()
    for result in await asyncio.gather(*tasks):
        if not isinstance(result, ChatCompletion):
            await collect(result)
    assert upstream.calls == 2
