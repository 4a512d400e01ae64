"""The exact cache stage through a real gateway with a counting fake provider."""

from __future__ import annotations

import pytest

from gatehouse.core.errors import ServiceUnavailableError
from gatehouse.core.types import ChatCompletion
from gatehouse.gateway import Gateway
from gatehouse.gateway.cache import CacheUnavailable, ExactCache, MemoryStore

from .cache_fakes import ALICE, BOB, CountingChat, collect, context, gateway

DET = {"temperature": 0}


@pytest.fixture
def upstream() -> CountingChat:
    return CountingChat()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(max_entries=100, max_bytes=1_000_000)


@pytest.fixture
def gw(upstream: CountingChat, store: MemoryStore) -> Gateway:
    return gateway(upstream, [ExactCache(store, ttl=60)])


async def test_second_identical_call_is_a_hit(gw: Gateway, upstream: CountingChat) -> None:
    first, second = context(DET), context(DET)
    a = await gw.handle(first)
    b = await gw.handle(second)
    assert upstream.calls == 1
    assert first.response_headers["x-gatehouse-cache"] == "miss"
    assert second.response_headers["x-gatehouse-cache"] == "hit"
    assert isinstance(a, ChatCompletion)
    assert isinstance(b, ChatCompletion)
    assert a.model_dump() == b.model_dump()
    assert second.usage == a.usage


async def test_non_deterministic_requests_bypass(gw: Gateway, upstream: CountingChat) -> None:
    for _ in range(2):
        ctx = context({"temperature": 0.8})
        await gw.handle(ctx)
        assert ctx.cache == "bypass"
    assert upstream.calls == 2


async def test_no_store_is_never_stored(
    gw: Gateway, upstream: CountingChat, store: MemoryStore
) -> None:
    ctx = context(DET, headers={"cache-control": "no-store"})
    await gw.handle(ctx)
    assert ctx.cache == "bypass"
    assert len(store) == 0
    await collect(await gw.handle(context({**DET, "stream": True}, headers=ctx.headers)))
    await gw.handle(context({**DET, "cache": {"bypass": True}}))
    assert len(store) == 0
    assert upstream.calls == 3


async def test_no_cache_skips_the_lookup_but_refreshes_the_entry(
    gw: Gateway, upstream: CountingChat
) -> None:
    await gw.handle(context(DET))
    fresh = context(DET, headers={"cache-control": "no-cache"})
    await gw.handle(fresh)
    assert fresh.cache == "bypass"
    assert upstream.calls == 2
    again = context(DET)
    await gw.handle(again)
    assert again.cache == "hit"
    assert upstream.calls == 2


async def test_streamed_hit_replays_the_same_chunks(gw: Gateway, upstream: CountingChat) -> None:
    body = {**DET, "stream": True, "messages": [{"role": "user", "content": "one two three"}]}
    live = await collect(await gw.handle(context(body)))
    ctx = context(body)
    replayed = await collect(await gw.handle(ctx))
    assert ctx.cache == "hit"
    assert upstream.calls == 1
    assert [c.model_dump() for c in replayed] == [c.model_dump() for c in live]


async def test_usage_chunk_follows_the_callers_stream_options(
    gw: Gateway, upstream: CountingChat
) -> None:
    body = {**DET, "stream": True}
    await collect(await gw.handle(context(body)))  # stored without a usage chunk
    with_usage = await collect(
        await gw.handle(context({**body, "stream_options": {"include_usage": True}}))
    )
    without = await collect(await gw.handle(context(body)))
    assert upstream.calls == 1
    assert with_usage[-1].usage is not None
    assert not with_usage[-1].choices
    assert with_usage[-1].usage.total_tokens == 5
    assert all(chunk.usage is None for chunk in without)


async def test_either_mode_answers_the_other(gw: Gateway, upstream: CountingChat) -> None:
    words = {**DET, "messages": [{"role": "user", "content": "alpha beta"}]}
    await collect(await gw.handle(context({**words, "stream": True})))
    completion = await gw.handle(context(words))
    assert isinstance(completion, ChatCompletion)
    assert completion.choices[0].message.content == "alphabeta"
    other = {**DET, "messages": [{"role": "user", "content": "gamma"}]}
    await gw.handle(context(other))
    chunks = await collect(await gw.handle(context({**other, "stream": True})))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "gamma"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert upstream.calls == 2


async def test_failed_and_cut_streams_are_not_stored(
    gw: Gateway, upstream: CountingChat, store: MemoryStore
) -> None:
    upstream.fail_with = ServiceUnavailableError("down")
    with pytest.raises(ServiceUnavailableError):
        await gw.handle(context(DET))
    upstream.fail_with = None
    upstream.fail_mid_stream = ServiceUnavailableError("cut")
    with pytest.raises(ServiceUnavailableError):
        await collect(await gw.handle(context({**DET, "stream": True})))
    upstream.fail_mid_stream = None
    stream = await gw.handle(context({**DET, "stream": True}))
    first = await anext(stream)  # type: ignore[call-overload]
    assert first is not None
    await stream.aclose()  # type: ignore[union-attr]  # the client went away
    assert len(store) == 0


async def test_scope_namespace_and_ttl(upstream: CountingChat) -> None:
    now = [0.0]
    store = MemoryStore(max_entries=10, max_bytes=100_000, clock=lambda: now[0])
    gw = gateway(upstream, [ExactCache(store, ttl=60)])
    await gw.handle(context(DET, principal=ALICE))
    await gw.handle(context(DET, principal=BOB))  # another caller: its own entry
    assert upstream.calls == 2
    await gw.handle(context({**DET, "cache": {"namespace": "v2"}}))
    assert upstream.calls == 3
    await gw.handle(context({**DET, "cache": {"ttl": 5}}))  # hit the first entry
    assert upstream.calls == 3
    team = gateway(upstream, [ExactCache(store, ttl=60, scope="team")])
    await team.handle(context({**DET, "cache": {"ttl": 5}}, principal=ALICE))
    now[0] = 10
    ctx = context(DET, principal=BOB)
    await team.handle(ctx)  # the team entry expired after its 5 s
    assert (ctx.cache, upstream.calls) == ("miss", 5)


class BrokenStore:
    async def get(self, key: str) -> bytes | None:
        raise CacheUnavailable("store down")

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        raise CacheUnavailable("store down")


async def test_a_broken_store_never_fails_the_call(upstream: CountingChat) -> None:
    gw = gateway(upstream, [ExactCache(BrokenStore(), ttl=60)])
    ctx = context(DET)
    assert isinstance(await gw.handle(ctx), ChatCompletion)
    assert ctx.cache == "miss"
