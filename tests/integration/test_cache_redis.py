"""The Redis cache store against a real redis-server, and a Redis outage as a miss."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from redis.asyncio import Redis

from gatehouse.gateway.cache import CacheStore, ExactCache, RedisStore
from gatehouse.gateway.cache.redis_store import PREFIX

from ..unit.cache_conformance import CONFORMANCE
from ..unit.cache_fakes import CountingChat, context, gateway
from .conftest import free_port


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; run `make test`, which installs it")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ping = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False
        )
        if ping.stdout.strip() == "PONG":
            break
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(redis_url)
    yield store
    await store.close()


@pytest.mark.parametrize("check", CONFORMANCE, ids=lambda c: c.__name__)
async def test_redis_store_conforms(
    store: RedisStore, check: Callable[[CacheStore], Awaitable[None]]
) -> None:
    await check(store)


async def test_redis_entries_carry_the_ttl(store: RedisStore, redis_url: str) -> None:
    await store.set("ttl", b"v", ttl=100)
    client = Redis.from_url(redis_url)
    remaining = await client.pttl(PREFIX + "ttl")
    await client.aclose()
    assert 0 < remaining <= 100_000


async def test_a_shared_entry_answers_another_replica(redis_url: str) -> None:
    first, second = RedisStore.from_url(redis_url), RedisStore.from_url(redis_url)
    upstream = CountingChat()
    body = {"temperature": 0, "messages": [{"role": "user", "content": "shared entry"}]}
    await gateway(upstream, [ExactCache(first, ttl=60)]).handle(context(body))
    ctx = context(body)
    await gateway(upstream, [ExactCache(second, ttl=60)]).handle(ctx)
    assert (upstream.calls, ctx.cache) == (1, "hit")
    await first.close()
    await second.close()


async def test_unreachable_redis_degrades_to_a_miss() -> None:
    dead = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    upstream = CountingChat()
    ctx = context({"temperature": 0})
    result = await gateway(upstream, [ExactCache(dead, ttl=60)]).handle(ctx)
    assert upstream.calls == 1
    assert ctx.cache == "miss"
    assert result is not None
    await dead.close()
