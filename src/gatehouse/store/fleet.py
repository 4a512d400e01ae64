"""Where replicas tell each other to reload their configuration: a counter, heartbeats, reports.

A configuration reload asked on one replica bumps a generation counter; every
replica polls it (with a heartbeat, so the asker knows who is alive) and, when
it moves, reads its own configuration again and leaves a short report under
that generation. Only the fact of a reload and its outcome (status, section
and model names) travel: never configuration contents, which hold secrets and
are each replica's own (files mounted per replica).

:class:`FleetChannel` is the contract; :class:`RedisFleetChannel` the shared
one (the Redis that limits and budgets use), :class:`MemoryFleetChannel` the
in-process one (several apps in one process, and tests).
"""

from __future__ import annotations

import secrets
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

REPORT_TTL_SECONDS = 600  # reports of a generation are kept this long
FORGET_SECONDS = 3600  # a replica silent this long leaves the heartbeats


def first_generation() -> int:
    """Where a counter that does not exist starts: at random, so that a Redis that
    restarted without its data does not number a new reload as one that replicas
    followed before it."""
    return secrets.randbelow(2**40) + 1


class FleetUnavailableError(Exception):
    """The shared store did not answer: nothing was asked, read or reported."""


class FleetChannel(Protocol):
    async def beat(self, replica: str, now: float) -> int:
        """Record that ``replica`` is alive at ``now``; the current generation (0 if
        none was ever asked)."""
        ...

    async def ask(self) -> int:
        """Ask every replica to reload: the new generation, never 0."""
        ...

    async def report(self, generation: int, replica: str, report: str) -> None:
        """Leave ``replica``'s outcome (JSON) of the reload of ``generation``."""
        ...

    async def reports(self, generation: int) -> dict[str, str]:
        """The outcomes left for ``generation`` so far, by replica."""
        ...

    async def alive(self, now: float, within: float) -> list[str]:
        """The replicas whose last beat is at most ``within`` seconds before ``now``
        (older ones are forgotten)."""
        ...

    async def close(self) -> None: ...


class MemoryFleetChannel:
    """The fleet of the apps in this process."""

    def __init__(self) -> None:
        self._generation = 0
        self._beats: dict[str, float] = {}
        self._reports: dict[int, dict[str, str]] = {}

    async def beat(self, replica: str, now: float) -> int:
        self._beats[replica] = now
        self._beats = {r: at for r, at in self._beats.items() if at >= now - FORGET_SECONDS}
        return self._generation

    async def ask(self) -> int:
        self._generation = self._generation + 1 if self._generation else first_generation()
        # Only the latest generations are asked about; the rest is history.
        self._reports = {g: r for g, r in self._reports.items() if g > self._generation - 16}
        return self._generation

    async def report(self, generation: int, replica: str, report: str) -> None:
        self._reports.setdefault(generation, {})[replica] = report

    async def reports(self, generation: int) -> dict[str, str]:
        return dict(self._reports.get(generation, {}))

    async def alive(self, now: float, within: float) -> list[str]:
        self._beats = {r: at for r, at in self._beats.items() if at >= now - within}
        return sorted(self._beats)

    async def close(self) -> None:
        pass


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
        return int(generation or 0)

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
