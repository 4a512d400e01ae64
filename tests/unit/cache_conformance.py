"""What every cache store must do; each backend's tests run these."""

from __future__ import annotations

from gatehouse.gateway.cache import CacheStore


async def check_round_trip(store: CacheStore) -> None:
    assert await store.get("absent") is None
    await store.set("k", b"\x00value", ttl=60)
    assert await store.get("k") == b"\x00value"


async def check_overwrite(store: CacheStore) -> None:
    await store.set("k2", b"old", ttl=60)
    await store.set("k2", b"new", ttl=60)
    assert await store.get("k2") == b"new"


async def check_keys_are_independent(store: CacheStore) -> None:
    await store.set("a", b"1", ttl=60)
    await store.set("b", b"2", ttl=60)
    assert (await store.get("a"), await store.get("b")) == (b"1", b"2")


CONFORMANCE = [check_round_trip, check_overwrite, check_keys_are_independent]
