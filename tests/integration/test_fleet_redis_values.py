"""The Redis fleet channel when the shared store holds what no replica wrote.

Whoever can write to Redis can already ask every replica to reload; a
generation that is not a number must not do more: it is the store not
answering (FleetUnavailableError), which a replica starts and polls through,
not an exception that stops the replica from starting."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from gatehouse.server.fleet import Fleet
from gatehouse.server.reload import ReloadResult
from gatehouse.store.fleet import FleetUnavailableError
from gatehouse.store.redis_fleet import RedisFleetChannel

from ..services import Redis


async def _never_reloaded() -> ReloadResult:
    raise AssertionError("no reload was asked")


async def test_a_generation_that_is_no_number_is_an_unavailable_fleet(
    redis_server: Redis,
) -> None:
    prefix = f"t-{uuid.uuid4().hex}:"
    writer = aioredis.Redis.from_url(redis_server.url)
    try:
        await writer.set(prefix + "generation", "not a number")
        channel = RedisFleetChannel(redis_server.url, prefix=prefix)
        try:
            for call in (channel.beat("a", 1.0), channel.ask()):
                with pytest.raises(FleetUnavailableError):
                    await call
        finally:
            await channel.close()
        # A replica starting now starts, and stops, as with Redis down.
        fleet = Fleet(RedisFleetChannel(redis_server.url, prefix=prefix), _never_reloaded)
        await fleet.start()
        await fleet.stop()
    finally:
        await writer.aclose()
