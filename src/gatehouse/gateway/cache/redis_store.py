"""The shared cache store: Redis, so replicas answer from one another's entries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gatehouse.gateway.cache.store import CacheUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

PREFIX = "gatehouse:cache:"
# A set per owner tag (never a user id): the entry keys holding that subject's data.
OWNER_PREFIX = "gatehouse:cache-owner:"
# Add the entry to the set and keep the set for as long as its longest-lived entry.
_TAG = """
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""
# Delete an owner's entries and its set, in one step; the keys that were still there.
_PURGE = """
local gone = {}
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('DEL', ARGV[1] .. key) == 1 then
    table.insert(gone, key)
  end
end
redis.call('DEL', KEYS[1])
return gone
"""


class RedisStore:
    """Entries as plain Redis strings with ``PX`` expiry; Redis evicts by its own policy."""

    def __init__(self, client: Redis) -> None:
        self._client = client

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        from redis.asyncio import Redis

        # Short timeouts: a slow cache must degrade to a miss, not stall the call.
        return cls(Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5))

    async def get(self, key: str) -> bytes | None:
        from redis.exceptions import RedisError

        try:
            value = await self._client.get(PREFIX + key)
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis cache get failed: {exc}") from exc
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        from redis.exceptions import RedisError

        try:
            await self._client.set(PREFIX + key, value, px=max(1, int(ttl * 1000)))
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis cache set failed: {exc}") from exc

    async def tag(self, owner: str, key: str, ttl: float) -> None:
        from redis.exceptions import RedisError

        try:
            await self._client.eval(_TAG, 1, OWNER_PREFIX + owner, key, max(1, int(ttl * 1000)))
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis cache tag failed: {exc}") from exc

    async def purge(self, owner: str) -> list[str]:
        from redis.exceptions import RedisError

        try:
            gone = await self._client.eval(_PURGE, 1, OWNER_PREFIX + owner, PREFIX)
        except (RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis cache purge failed: {exc}") from exc
        return sorted(k.decode() if isinstance(k, bytes) else str(k) for k in gone)

    async def close(self) -> None:
        await self._client.aclose()
