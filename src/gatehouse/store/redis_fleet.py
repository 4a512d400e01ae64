"""The fleet channel (:mod:`gatehouse.store.fleet`) in Redis: a counter, a sorted set of
heartbeats and a hash of reports per generation.

Its own module so that the redis client (which imports OpenTelemetry) is
loaded only by servers configured with Redis.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gatehouse.store.fleet import (
    FORGET_SECONDS,
    REPORT_TTL_SECONDS,
    FleetUnavailableError,
    first_generation,
)


class RedisFleetChannel:
    """The fleet of every replica sharing one Redis: a counter, a sorted set of
    heartbeats and a hash of reports per generation, under ``prefix``."""

    def __init__(self, url: str, *, prefix: str = "gh:config:") -> None:
        # A poll and at most one reload at a time: a connection or two.
        self._redis: Any = aioredis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )
        self._generation = prefix + "generation"
        self._replicas = prefix + "replicas"
        self._reports = prefix + "reports:"

    async def beat(self, replica: str, now: float) -> int:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zadd(self._replicas, {replica: now})
                # Each start is a new process id: forget the ones long gone.
                pipe.zremrangebyscore(self._replicas, "-inf", f"({now - FORGET_SECONDS!r}")
                pipe.get(self._generation)
                *_, generation = await pipe.execute()
        except RedisError as exc:
            raise FleetUnavailableError(str(exc)) from exc
        try:
            return int(generation or 0)
        except ValueError:
            # Not this channel's writing: the store is of no use, as when it is down
            # (a ValueError here stopped a replica from starting).
            raise FleetUnavailableError(
                f"the reload generation is not a number: {generation[:40]!r}"
            ) from None

    async def ask(self) -> int:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._generation, first_generation(), nx=True)
                pipe.incr(self._generation)
                _, generation = await pipe.execute()
        except RedisError as exc:
            raise FleetUnavailableError(str(exc)) from exc
        return int(generation)

    async def report(self, generation: int, replica: str, report: str) -> None:
        key = f"{self._reports}{generation}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, replica, report)
                pipe.expire(key, REPORT_TTL_SECONDS)
                await pipe.execute()
        except RedisError as exc:
            raise FleetUnavailableError(str(exc)) from exc

    async def reports(self, generation: int) -> dict[str, str]:
        try:
            found: dict[str, str] = await self._redis.hgetall(f"{self._reports}{generation}")
        except RedisError as exc:
            raise FleetUnavailableError(str(exc)) from exc
        return found

    async def alive(self, now: float, within: float) -> list[str]:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(self._replicas, "-inf", f"({now - within!r}")
                pipe.zrange(self._replicas, 0, -1)
                _, replicas = await pipe.execute()
        except RedisError as exc:
            raise FleetUnavailableError(str(exc)) from exc
        return sorted(replicas)

    async def close(self) -> None:
        await self._redis.aclose()
