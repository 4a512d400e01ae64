"""The key cache: one load for many concurrent requests, dropped on a revision change."""

from __future__ import annotations

import asyncio

from gatehouse.core.records import KeyRecord
from gatehouse.gateway.keys import (
    CachedKey,
    Directory,
    digest,
    matches,
    new_key,
    new_secret,
    parse_key,
    principal_for,
    verified,
)


class CountingStore:
    def __init__(self, record: KeyRecord) -> None:
        self.record = record
        self.loads = 0
        self.rev = 1

    async def key(self, key_id: str) -> KeyRecord | None:
        self.loads += 1
        await asyncio.sleep(0.01)
        return self.record if key_id == self.record.id else None

    async def revision(self) -> int:
        return self.rev


def record() -> KeyRecord:
    key_id, _, salt, hashed = new_key()
    return KeyRecord(
        id=key_id, name="k", salt=salt, digest=hashed, scopes=["chat"], created_at=0, updated_at=0
    )


async def test_concurrent_misses_load_once_and_revisions_drop_the_cache() -> None:
    store = CountingStore(record())
    directory = Directory(store, poll_seconds=0.5)  # type: ignore[arg-type]
    await directory.refresh()
    found = await asyncio.gather(*(directory.key(store.record.id) for _ in range(50)))
    assert store.loads == 1
    assert all(f is not None and f.record == store.record for f in found)
    await directory.key(store.record.id)
    assert store.loads == 1
    store.rev = 2
    await directory.refresh()
    await directory.key(store.record.id)
    assert store.loads == 2
    assert await directory.key("0" * 16) is None


def test_key_format_and_constant_time_check() -> None:
    key_id, key, salt, hashed = new_key()
    parsed = parse_key(key)
    assert parsed is not None
    assert parsed[0] == key_id
    assert digest(salt, parsed[1]) == hashed
    item = KeyRecord(
        id=key_id, name="k", salt=salt, digest=hashed, scopes=[], created_at=0, updated_at=0
    )
    assert matches(item, parsed[1])
    assert not matches(item, parsed[1][:-1] + ("A" if parsed[1][-1] != "A" else "B"))
    for malformed in ["gh-", "gh-XYZ_secret", key.replace("_", "-", 1), key + " ", "sk-" + key[3:]]:
        assert parse_key(malformed) is None


def test_a_verified_secret_is_remembered_as_a_hash_and_a_wrong_one_still_fails() -> None:
    key_id, key, salt, hashed = new_key()
    parsed = parse_key(key)
    assert parsed is not None
    secret = parsed[1]
    item = KeyRecord(
        id=key_id, name="k", salt=salt, digest=hashed, scopes=[], created_at=0, updated_at=0
    )
    cached = CachedKey(item, principal_for(item))
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    assert not verified(cached, wrong)
    assert cached.proof is None  # nothing remembered from a failure
    assert verified(cached, secret)
    assert cached.proof is not None
    assert secret.encode() not in cached.proof  # a digest, never the secret
    assert verified(cached, secret)  # from the remembered proof
    assert not verified(cached, wrong)  # a wrong secret is checked against the digest
    assert cached.proof is not None


def test_a_rotated_record_is_checked_against_its_own_digest() -> None:
    key_id, key, salt, hashed = new_key()
    parsed = parse_key(key)
    assert parsed is not None
    old = KeyRecord(
        id=key_id, name="k", salt=salt, digest=hashed, scopes=[], created_at=0, updated_at=0
    )
    cached = CachedKey(old, principal_for(old))
    assert verified(cached, parsed[1])
    _, new_salt, new_hashed = new_secret(key_id)
    rotated = old.model_copy(update={"salt": new_salt, "digest": new_hashed})
    # After the directory drops its caches, the rotated record is a new entry.
    assert not verified(CachedKey(rotated, principal_for(rotated)), parsed[1])
