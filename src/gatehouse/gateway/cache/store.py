"""Where cached responses live: a Protocol, the in-process LRU, and its errors.

Values are opaque bytes with a time to live. The in-process store is the
default; :mod:`gatehouse.gateway.cache.redis_store` shares entries between
replicas. Both pass the same conformance tests.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol


class CacheUnavailable(Exception):
    """A shared store could not be reached. Never reaches a client: the cache
    stage treats it as a miss, because a cache must not fail a request."""


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...

    async def tag(self, owner: str, key: str, ttl: float) -> None:
        """Note that entry ``key`` holds data of ``owner`` (a subject tag, see
        :func:`gatehouse.core.pseudonyms.subject_tag`), for :meth:`purge`."""
        ...

    async def purge(self, owner: str) -> list[str]:
        """Delete every entry tagged with ``owner``; the keys it deleted."""
        ...


class MemoryStore:
    """An LRU bounded by entry count and total bytes, with per-entry expiry.

    ``clock`` is monotonic seconds, injected so expiry is tested without sleeping.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._owned: dict[str, set[str]] = {}  # owner tag -> entry keys
        self._owners: dict[str, set[str]] = {}  # entry key -> owner tags

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires_at, value = found
        if expires_at <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self.max_bytes:
            return  # would evict everything and still not fit
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + ttl, value)
        self._bytes += len(value)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    async def tag(self, owner: str, key: str, ttl: float) -> None:
        if key in self._entries:
            self._owned.setdefault(owner, set()).add(key)
            self._owners.setdefault(key, set()).add(owner)

    async def purge(self, owner: str) -> list[str]:
        keys = sorted(self._owned.get(owner, ()))
        for key in keys:
            self._drop(key)
        return keys

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self._bytes -= len(value)
        for owner in self._owners.pop(key, ()):
            owned = self._owned[owner]
            owned.discard(key)
            if not owned:
                del self._owned[owner]
