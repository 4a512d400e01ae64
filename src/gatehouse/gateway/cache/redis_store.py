"""The shared cache store: Redis, so replicas answer from one another's entries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gatehouse.gateway.cache.store import CacheUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

PREFIX = "gatehouse:cache:"


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

    async def close(self) -> None:
        await self._client.aclose()
