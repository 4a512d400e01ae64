"""What every fleet channel (gatehouse.store.fleet) must do; each backend's tests run these.

Each check gets a channel that nobody else uses.
"""

from __future__ import annotations

from gatehouse.store.fleet import FORGET_SECONDS, FleetChannel


async def check_each_ask_moves_the_generation(channel: FleetChannel) -> None:
    assert await channel.beat("a", 100.0) == 0  # never asked
    first = await channel.ask()
    # Not 1: a store that lost its data must not number a new reload as an old one.
    assert first not in (0, 1)
    assert await channel.beat("b", 100.0) == first
    assert await channel.ask() == first + 1
    assert await channel.beat("a", 101.0) == first + 1


async def check_reports_are_kept_by_generation(channel: FleetChannel) -> None:
    generation = await channel.ask()
    assert await channel.reports(generation) == {}
    await channel.report(generation, "a", '{"status": "applied"}')
    await channel.report(generation, "b", '{"status": "refused"}')
    assert await channel.reports(generation) == {
        "a": '{"status": "applied"}',
        "b": '{"status": "refused"}',
    }
    assert await channel.reports(generation + 1) == {}


async def check_replicas_not_heard_of_are_forgotten(channel: FleetChannel) -> None:
    await channel.beat("a", 1000.0)
    await channel.beat("b", 990.0)
    await channel.beat("c", 997.0)
    assert await channel.alive(1000.0, 5.0) == ["a", "c"]
    assert await channel.alive(1000.0, 60.0) == ["a", "c"]  # b is gone, not just hidden
    await channel.beat("b", 1001.0)
    assert await channel.alive(1001.0, 5.0) == ["a", "b", "c"]
    # Replicas long gone leave with any beat, without a reload asked.
    later = 1001.0 + FORGET_SECONDS + 1
    await channel.beat("d", later)
    assert await channel.alive(later, 2 * FORGET_SECONDS) == ["d"]


CONFORMANCE = [
    check_each_ask_moves_the_generation,
    check_reports_are_kept_by_generation,
    check_replicas_not_heard_of_are_forgotten,
]
