"""A per-deployment circuit breaker: closed, open for a cooldown, then one probe.

Time comes from the caller (``now``), so tests drive it without sleeping.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(self, *, failures: int, window: float, cooldown: float) -> None:
        self._threshold = failures
        self._window = window
        self._cooldown = cooldown
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._probing = False
        self.openings = 0  # times it went from closed to open (alerts watch this)

    def state(self, now: float) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._probing or now >= self._opened_at + self._cooldown:
            return "half_open"
        return "open"

    def can_try(self, now: float) -> bool:
        """May a request go to this deployment now? Does not change state."""
        state = self.state(now)
        return state == "closed" or (state == "half_open" and not self._probing)

    def opens_again_at(self) -> float | None:
        return None if self._opened_at is None else self._opened_at + self._cooldown

    def on_attempt(self, now: float) -> None:
        """A request is being sent; in half-open state it is the single probe."""
        if self.state(now) == "half_open":
            self._probing = True

    def on_success(self) -> None:
        self._failures.clear()
        self._opened_at = None
        self._probing = False

    def on_neutral(self) -> None:
        """The attempt ended without telling anything about health (a client error)."""
        self._probing = False

    def on_failure(self, now: float) -> None:
        if self._probing or self._opened_at is not None:
            # The probe failed: stay open for another full cooldown.
            self._opened_at = now
            self._probing = False
            return
        self._failures.append(now)
        while self._failures and self._failures[0] <= now - self._window:
            self._failures.popleft()
        if len(self._failures) >= self._threshold:
            self._opened_at = now
            self._failures.clear()
            self.openings += 1

    def recent_failures(self, now: float) -> int:
        return sum(1 for t in self._failures if t > now - self._window)
