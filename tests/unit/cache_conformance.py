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


async def check_purge_deletes_an_owners_entries(store: CacheStore) -> None:
    for key in ("own-1", "own-2", "own-3"):
        await store.set(key, key.encode(), ttl=60)
    await store.tag("owner-a", "own-1", 60)
    await store.tag("owner-a", "own-2", 60)
    await store.tag("owner-b", "own-2", 60)
    await store.tag("owner-b", "own-3", 60)
    assert sorted(await store.purge("owner-a")) == ["own-1", "own-2"]
    assert (await store.get("own-1"), await store.get("own-2")) == (None, None)
    assert await store.get("own-3") == b"own-3"  # another owner's entry stays
    assert await store.purge("owner-a") == []
    assert await store.purge("owner-b") == ["own-3"]  # own-2 is already gone


CONFORMANCE = [
    check_round_trip,
    check_overwrite,
    check_keys_are_independent,
    check_purge_deletes_an_owners_entries,
]
