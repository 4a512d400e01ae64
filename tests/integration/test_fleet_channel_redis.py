"""The Redis fleet channel against a real redis-server: the conformance checks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gatehouse.store.fleet import FleetChannel, FleetUnavailableError
from gatehouse.store.redis_fleet import RedisFleetChannel

from ..services import Redis
from ..unit.fleet_channel_conformance import CONFORMANCE
from .conftest import free_port


@pytest.fixture
async def channel(redis_server: Redis) -> AsyncIterator[RedisFleetChannel]:
    # Keys of its own: the session's redis-server is shared with other tests.
    opened = RedisFleetChannel(redis_server.url, prefix=f"t-{uuid.uuid4().hex}:")
    yield opened
    await opened.close()


@pytest.mark.parametrize("check", CONFORMANCE, ids=lambda c: c.__name__)
async def test_redis_channel_conforms(
    channel: RedisFleetChannel, check: Callable[[FleetChannel], Awaitable[None]]
) -> None:
    await check(channel)


async def test_an_unreachable_redis_is_fleet_unavailable() -> None:
    channel = RedisFleetChannel(f"redis://127.0.0.1:{free_port()}/0")
    try:
        for call in (channel.beat("a", 1.0), channel.ask(), channel.reports(1)):
            with pytest.raises(FleetUnavailableError):
                await call
    finally:
        await channel.close()
