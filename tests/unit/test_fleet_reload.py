"""Fleet reloads on the in-process channel: asked on one replica, followed by the others.

Each replica's poll is driven by hand (``Fleet.check``), so no test waits on
the poll interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gatehouse.core.errors import InvalidRequestError
from gatehouse.server import fleet as fleet_module
from gatehouse.server.fleet import Fleet, FleetReport
from gatehouse.server.reload import ReloadResult
from gatehouse.store.fleet import FleetChannel, FleetUnavailableError, MemoryFleetChannel

from .fleet_channel_conformance import CONFORMANCE


class Replica:
    """A replica's own reload: counts its calls, or refuses its configuration."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.calls = 0
        self.refuse = refuse

    async def __call__(self) -> ReloadResult:
        self.calls += 1
        if self.refuse:
            raise InvalidRequestError(
                "The configuration was not reloaded (the old one stays): limits.models.up.rpm",
                code="invalid_config",
                status=422,
            )
        return ReloadResult(
            status="applied", applied=["models"], restart_required=[], models=["up", "up2"]
        )


class Unreachable(MemoryFleetChannel):
    """The in-process channel, but Redis does not answer while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def beat(self, replica: str, now: float) -> int:
        if self.down:
            raise FleetUnavailableError("Connection refused")
        return await super().beat(replica, now)

    async def ask(self) -> int:
        if self.down:
            raise FleetUnavailableError("Connection refused")
        return await super().ask()


@pytest.fixture
def channel() -> MemoryFleetChannel:
    return MemoryFleetChannel()


@pytest.mark.parametrize("check", CONFORMANCE, ids=lambda c: c.__name__)
async def test_the_memory_channel_conforms(
    channel: MemoryFleetChannel, check: Callable[[FleetChannel], Awaitable[None]]
) -> None:
    await check(channel)


@pytest.fixture
async def fleets(channel: MemoryFleetChannel) -> AsyncIterator[dict[str, tuple[Fleet, Replica]]]:
    started: dict[str, tuple[Fleet, Replica]] = {}
    for name in ("a", "b", "c"):
        reload = Replica()
        fleet = Fleet(channel, reload, replica=name)
        await fleet.start()
        started[name] = (fleet, reload)
    yield started
    for fleet, _ in started.values():
        await fleet.stop()


async def _ask_while_others_check(asker: Fleet, *others: Fleet) -> FleetReport:
    asking = asyncio.create_task(asker.ask())
    await asyncio.sleep(0)  # the generation is bumped; the asker waits for reports
    for other in others:
        await other.check()
    return await asking


async def test_the_others_reload_and_report_to_the_asker(
    fleets: dict[str, tuple[Fleet, Replica]],
) -> None:
    (a, a_reload), (b, b_reload), (c, c_reload) = fleets.values()
    report = await _ask_while_others_check(a, b, c)
    assert report.asked
    assert report.generation is not None
    assert [(r.replica, r.status, r.models) for r in report.reported] == [
        ("b", "applied", ["up", "up2"]),
        ("c", "applied", ["up", "up2"]),
    ]
    assert report.pending == []
    # The asker reloaded itself before asking: its own poll does not do it again.
    await a.check()
    assert (a_reload.calls, b_reload.calls, c_reload.calls) == (0, 1, 1)
    # Nothing asked since: polls reload nothing.
    await b.check()
    assert b_reload.calls == 1


async def test_a_refused_configuration_is_logged_once_and_reported_without_its_text(
    fleets: dict[str, tuple[Fleet, Replica]], caplog: pytest.LogCaptureFixture
) -> None:
    (a, _), (b, b_reload), (c, _) = fleets.values()
    b_reload.refuse = True
    with caplog.at_level(logging.INFO, logger="gatehouse.server"):
        report = await _ask_while_others_check(a, b, c)
    by_replica = {r.replica: r for r in report.reported}
    assert by_replica["b"].status == "refused"
    assert by_replica["b"].models == []
    assert "rpm" not in by_replica["b"].model_dump_json()  # the message stays in b's log
    assert by_replica["c"].status == "applied"  # the others are unaffected
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in errors] == [
        f"configuration reload {report.generation} asked by another replica: not reloaded, "
        "the old configuration stays: The configuration was not reloaded (the old one "
        "stays): limits.models.up.rpm"
    ]


async def test_replicas_that_do_not_report_within_the_wait_are_pending(
    fleets: dict[str, tuple[Fleet, Replica]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fleet_module, "REPORT_WAIT_SECONDS", 0.01)
    (a, _), (b, b_reload), _ = fleets.values()
    report = await a.ask()
    assert report.asked
    assert report.reported == []
    assert report.pending == ["b", "c"]
    # Asked all the same: the next poll reloads.
    await b.check()
    assert b_reload.calls == 1


async def test_a_replica_not_heard_of_lately_is_not_waited_for(
    channel: MemoryFleetChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fleet_module, "REPORT_WAIT_SECONDS", 30.0)
    now = 1_000_000.0
    a = Fleet(channel, Replica(), replica="a", clock=lambda: now)
    gone = Fleet(channel, Replica(), replica="gone", clock=lambda: now - 60)
    await gone.start()
    await a.start()
    try:
        # Returns at once, not after 30 s: the only other replica is long silent.
        report = await asyncio.wait_for(a.ask(), timeout=10)
        assert report.pending == []
        assert report.reported == []
    finally:
        await a.stop()
        await gone.stop()


async def test_without_redis_the_others_are_not_asked_and_a_later_poll_catches_up() -> None:
    channel = Unreachable()
    reload = Replica()
    fleet = Fleet(channel, reload, replica="a")
    await fleet.start()  # Redis down at start: which generation is current is unknown
    try:
        report = await fleet.ask()
        assert not report.asked
        assert report.error is not None
        assert "Connection refused" in report.error
        with pytest.raises(FleetUnavailableError):
            await fleet.check()
        channel.down = False
        await fleet.check()  # the first generation read is followed: maybe one was missed
        assert reload.calls == 1
        await fleet.check()
        assert reload.calls == 1
    finally:
        await fleet.stop()


async def test_a_generation_that_goes_back_is_followed(
    fleets: dict[str, tuple[Fleet, Replica]],
) -> None:
    (a, _), (b, b_reload), (c, _) = fleets.values()
    await _ask_while_others_check(a, b, c)
    assert b_reload.calls == 1
    # Redis restarted without its data: the counter is gone (0), and starts again
    # at random, not at the number b followed last. Each change is followed.
    fresh = MemoryFleetChannel()
    for fleet, _ in fleets.values():
        fleet._channel = fresh
    await b.check()
    assert b_reload.calls == 2
    report = await _ask_while_others_check(a, b, c)
    assert report.pending == []
    assert b_reload.calls == 3


async def test_a_worker_started_after_a_reload_follows_it(
    fleets: dict[str, tuple[Fleet, Replica]], channel: MemoryFleetChannel
) -> None:
    (a, _), (b, _), (c, _) = fleets.values()
    await _ask_while_others_check(a, b, c)
    # A replica reading its own configuration at start has nothing to follow; a
    # worker, serving the settings its parent read before the reload, has.
    replica, worker = Replica(), Replica()
    started = [
        Fleet(channel, replica, replica="new"),
        Fleet(channel, worker, replica="worker", inherited=True),
    ]
    for fleet in started:
        await fleet.start()
        await fleet.check()
        await fleet.check()
        await fleet.stop()
    assert (replica.calls, worker.calls) == (0, 1)


async def test_an_unreadable_report_is_left_out_of_the_answer(
    fleets: dict[str, tuple[Fleet, Replica]], channel: MemoryFleetChannel
) -> None:
    (a, _), (b, _), (c, _) = fleets.values()

    class OtherVersion:
        """The shared channel, as seen by a replica that reports in another shape."""

        def __getattr__(self, name: str) -> object:
            return getattr(channel, name)

        async def report(self, generation: int, replica: str, report: str) -> None:
            await channel.report(generation, replica, '{"state": "reloaded"}')

    c._channel = OtherVersion()  # type: ignore[assignment]
    report = await _ask_while_others_check(a, b, c)
    assert [r.replica for r in report.reported] == ["b"]
    assert report.pending == []  # c answered, in a shape this version does not read
