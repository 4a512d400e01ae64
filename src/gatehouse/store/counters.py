"""Shared counters for rate limits, concurrency and budget reservations.

One request's admission is a list of :class:`Claim`\\ s decided atomically: all
are granted or none is. Four kinds:

- ``rate``: GCRA (generic cell rate algorithm), ``limit`` units per ``period``
  seconds with a burst of ``limit``. Not a fixed window: capacity returns
  continuously, one unit every ``period / limit`` seconds. The stored state is
  the theoretical arrival time (TAT).
- ``gauge``: a level that goes up on admission and down when settled
  (concurrent requests). ``period`` is its key's time to live, so a crashed
  replica's leftovers expire.
- ``quota``: an amount that only grows within its key. ``period`` is the
  time to live, 0 for never.
- ``spend``: a ``quota`` whose starting point was read from elsewhere and
  written with ``seed`` (budget spend, keyed by period, seeded from the
  ledger). Its key must exist: when the store has lost it (Redis restarted
  empty, evicted it, failed over), admission raises
  :class:`CounterUnseededError` and writes nothing, so the caller seeds it
  again instead of counting from zero.

``settle`` applies deltas afterwards: token limits and budgets reserve an
estimate and settle with the real usage; a gauge settles with ``-amount``.

The arithmetic is here once, free of I/O; :class:`MemoryCounters` runs it in
process and the Redis backend runs the same rules in a Lua script. Both pass
``tests/integration/test_counter_conformance.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple, Protocol

ClaimKind = Literal["rate", "gauge", "quota", "spend"]
UNLIMITED = -1.0
_EPSILON = 1e-9
_QUOTAS = frozenset({"quota", "spend"})  # the kinds that only grow within their key


class CounterUnavailableError(Exception):
    """The shared counter store cannot be reached."""


class CounterUnseededError(Exception):
    """``spend`` claims whose keys the store does not hold: seed them, then admit again."""

    def __init__(self, keys: Sequence[str]) -> None:
        super().__init__(f"not seeded: {', '.join(keys)}")
        self.keys = tuple(keys)


# Named tuples rather than frozen dataclasses: a request builds several of
# each, and a frozen dataclass pays an object.__setattr__ per field.
class Claim(NamedTuple):
    kind: ClaimKind
    key: str
    limit: float  # UNLIMITED (-1) never rejects: a soft budget that only counts
    amount: float
    period: float = 60.0


class Outcome(NamedTuple):
    allowed: bool
    remaining: float
    reset: float  # seconds until the claim's capacity is whole again
    retry_after: float  # seconds until a denied claim could fit; 0 when allowed
    level: float = 0.0  # gauge/quota: the level after this claim (soft-budget alerts)


class Decision(NamedTuple):
    allowed: bool
    outcomes: tuple[Outcome, ...]

    def denied(self) -> int | None:
        """Index of the first claim that did not fit."""
        for index, outcome in enumerate(self.outcomes):
            if not outcome.allowed:
                return index
        return None


class Counters(Protocol):
    """What admission needs of a counter store. Times are epoch seconds."""

    async def admit(self, claims: Sequence[Claim], now: float) -> Decision:
        """Grant every claim, or none of them; :class:`CounterUnseededError`
        (nothing written) when a ``spend`` claim's key is missing."""
        ...

    async def settle(self, claims: Sequence[Claim], deltas: Sequence[float], now: float) -> None:
        """Add ``deltas[i]`` units to what ``claims[i]`` took (negative gives back)."""
        ...

    async def seed(self, key: str, value: float, ttl: float) -> None:
        """Set a quota's value unless it already has one (a restart's starting point)."""
        ...

    async def close(self) -> None: ...


def require_seeded(claims: Sequence[Claim], stored: Sequence[float | None]) -> None:
    """Raise :class:`CounterUnseededError` for the ``spend`` claims whose stored
    value (``None``: the key is missing or expired) the store no longer holds."""
    unseeded = [
        claim.key
        for claim, value in zip(claims, stored, strict=True)
        if claim.kind == "spend" and value is None
    ]
    if unseeded:
        raise CounterUnseededError(unseeded)


def evaluate(claim: Claim, state: float, now: float) -> tuple[Outcome, float]:
    """Decide one claim against its stored state; returns the outcome and the new state."""
    if claim.kind == "rate":
        interval = claim.period / claim.limit
        tat = max(state, now)
        new_tat = tat + claim.amount * interval
        allow_at = new_tat - claim.period
        if allow_at > now + _EPSILON:
            remaining = max(0.0, math.floor((claim.period - (tat - now)) / interval + _EPSILON))
            return Outcome(False, remaining, tat - now, allow_at - now), state
        remaining = math.floor((claim.period - (new_tat - now)) / interval + _EPSILON)
        return Outcome(True, max(0.0, remaining), new_tat - now, 0.0), new_tat
    level = state + claim.amount
    if claim.limit == UNLIMITED:
        return Outcome(True, math.inf, 0.0, 0.0, level), level
    if level <= claim.limit + _EPSILON:
        return Outcome(True, claim.limit - level, _reset(claim), 0.0, level), level
    retry = _reset(claim) if claim.kind in _QUOTAS else 1.0
    return Outcome(False, max(0.0, claim.limit - state), _reset(claim), retry, state), state


def settled(claim: Claim, state: float, delta: float) -> float:
    """The state after adding ``delta`` units to a granted claim."""
    if claim.kind == "rate":
        return state + delta * (claim.period / claim.limit)
    return state + delta


def _reset(claim: Claim) -> float:
    return claim.period if claim.kind in _QUOTAS else 0.0


def expiry(claim: Claim, new_state: float, now: float) -> float | None:
    """Seconds the stored state must live; ``None`` for ever."""
    if claim.kind == "rate":
        return max(new_state - now, 0.0) + 1.0
    if claim.period <= 0:
        return None
    return claim.period


class MemoryCounters:
    """The in-process backend: a dict, atomic because the event loop runs one
    coroutine at a time and nothing here awaits.

    Expired entries go when read again, and all of them in a sweep whenever the
    dict has doubled since the last one, so keys never read again (a client
    address that failed once, a rate window of a deleted key) do not pile up:
    amortised O(1) a write, and the dict stays within twice its live entries.
    """

    SWEEP_FLOOR = 1024

    def __init__(self) -> None:
        self._values: dict[str, tuple[float, float | None]] = {}
        self._sweep_at = self.SWEEP_FLOOR

    def _get(self, key: str, now: float) -> float | None:
        """The live value of ``key``, ``None`` for a missing or expired one."""
        entry = self._values.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= now:
            del self._values[key]
            return None
        return value

    async def admit(self, claims: Sequence[Claim], now: float) -> Decision:
        stored = [self._get(claim.key, now) for claim in claims]
        require_seeded(claims, stored)
        outcomes: list[Outcome] = []
        states: list[float] = []
        allowed = True
        for claim, value in zip(claims, stored, strict=True):
            outcome, state = evaluate(claim, value or 0.0, now)
            allowed = allowed and outcome.allowed
            outcomes.append(outcome)
            states.append(state)
        if allowed:
            for claim, state in zip(claims, states, strict=True):
                ttl = expiry(claim, state, now)
                self._values[claim.key] = (state, None if ttl is None else now + ttl)
            if len(self._values) >= self._sweep_at:
                self._sweep(now)
        return Decision(allowed, tuple(outcomes))

    def _sweep(self, now: float) -> None:
        values = self._values
        for key in [
            k for k, (_, expires) in values.items() if expires is not None and expires <= now
        ]:
            del values[key]
        self._sweep_at = max(self.SWEEP_FLOOR, 2 * len(values))

    async def settle(self, claims: Sequence[Claim], deltas: Sequence[float], now: float) -> None:
        for claim, delta in zip(claims, deltas, strict=True):
            entry = self._values.get(claim.key)
            if entry is None or delta == 0:
                continue
            self._values[claim.key] = (settled(claim, entry[0], delta), entry[1])

    async def seed(self, key: str, value: float, ttl: float) -> None:
        if key not in self._values:
            self._values[key] = (value, None)

    async def close(self) -> None:
        self._values.clear()
