"""Where replicas tell each other to reload their configuration: a counter, heartbeats, reports.

A configuration reload asked on one replica bumps a generation counter; every
replica polls it (with a heartbeat, so the asker knows who is alive) and, when
it moves, reads its own configuration again and leaves a short report under
that generation. Only the fact of a reload and its outcome (status, section
and model names) travel: never configuration contents, which hold secrets and
are each replica's own (files mounted per replica).

:class:`FleetChannel` is the contract; ``RedisFleetChannel``
(:mod:`gatehouse.store.redis_fleet`) the shared one, on the Redis that limits
and budgets use; :class:`MemoryFleetChannel` the in-process one (several apps
in one process, and tests).
"""

from __future__ import annotations

import secrets
from typing import Protocol

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
