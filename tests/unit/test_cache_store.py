"""The in-process LRU store: conformance, expiry and both size bounds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from gatehouse.gateway.cache import CacheStore, MemoryStore

from .cache_conformance import CONFORMANCE


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("check", CONFORMANCE, ids=lambda c: c.__name__)
async def test_memory_store_conforms(check: Callable[[CacheStore], Awaitable[None]]) -> None:
    await check(MemoryStore(max_entries=10, max_bytes=10_000))


async def test_entries_expire_after_their_ttl() -> None:
    clock = FakeClock()
    store = MemoryStore(max_entries=10, max_bytes=10_000, clock=clock)
    await store.set("k", b"v", ttl=30)
    clock.now += 29.9
    assert await store.get("k") == b"v"
    clock.now += 0.1
    assert await store.get("k") is None
    assert len(store) == 0
    assert store.size_bytes == 0


async def test_least_recently_used_entry_goes_first() -> None:
    store = MemoryStore(max_entries=2, max_bytes=10_000)
    await store.set("a", b"1", ttl=60)
    await store.set("b", b"2", ttl=60)
    await store.get("a")  # a is now the most recently used
    await store.set("c", b"3", ttl=60)
    assert await store.get("b") is None
    assert await store.get("a") == b"1"
    assert await store.get("c") == b"3"


async def test_byte_bound_evicts_and_oversized_values_are_skipped() -> None:
    store = MemoryStore(max_entries=100, max_bytes=10)
    await store.set("a", b"12345", ttl=60)
    await store.set("b", b"12345", ttl=60)
    await store.set("c", b"1", ttl=60)
    assert await store.get("a") is None
    assert store.size_bytes == 6
    await store.set("huge", b"x" * 11, ttl=60)
    assert await store.get("huge") is None
    assert await store.get("b") == b"12345"
