"""A deployment's capacity from Little's law: how many requests it may have in flight.

This is per-deployment queueing (settings ``router.admission``); the per-caller
limits and budgets are :mod:`gatehouse.gateway.limits`.

Little's law says the average number of requests in a system is the arrival
rate times the time each spends there: L = lambda * W. A deployment meant to
serve ``target_rps`` requests a second, each taking ``W`` seconds (the
measured latency average), needs about ``target_rps * W`` requests in flight;
more than that only queues inside the upstream, where nobody can see or bound
it. So each deployment admits ``ceil(target_rps * W * headroom)`` concurrent
requests; the rest wait here, in a bounded FIFO queue with a deadline, and are
refused with 503 and a ``Retry-After`` when it passes. Nothing admitted is ever
dropped: a slot is held until the call (or the stream) ends.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

from gatehouse.core.errors import AdmissionTimeoutError, QueueFullError


def little_limit(
    target_rps: float, latency_s: float, *, headroom: float = 1.2, floor: int = 1
) -> int:
    """In-flight requests needed to serve ``target_rps`` at ``latency_s`` per request."""
    return max(floor, math.ceil(target_rps * latency_s * headroom))


class Capacity:
    """The in-flight limit and waiting queue of one deployment."""

    def __init__(
        self,
        *,
        target_rps: float | None,
        max_in_flight: int,
        queue_size: int,
        queue_timeout: float,
        headroom: float = 1.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target_rps = target_rps
        self.max_in_flight = max_in_flight
        self.queue_size = queue_size
        self.queue_timeout = queue_timeout
        self.headroom = headroom
        self.in_flight = 0
        self.limit = max_in_flight
        self.rejected = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._clock = clock

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def has_capacity(self) -> bool:
        return self.in_flight < self.limit and not self._waiters

    def update(self, latency_s: float | None) -> None:
        """Recompute the limit from the latest latency average (L = lambda * W)."""
        if self.target_rps is None or latency_s is None:
            self.limit = self.max_in_flight
        else:
            computed = little_limit(self.target_rps, latency_s, headroom=self.headroom)
            self.limit = min(self.max_in_flight, computed)
        self._wake()

    async def acquire(self) -> float:
        """Take a slot, waiting in line if needed; returns the seconds spent waiting."""
        if self.has_capacity():
            self.in_flight += 1
            return 0.0
        if len(self._waiters) >= self.queue_size:
            self.rejected += 1
            raise QueueFullError(
                "The deployment's admission queue is full; retry later.",
                retry_after=self.retry_after(),
            )
        started = self._clock()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.queue_timeout):
                await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return self._clock() - started  # the slot arrived as time ran out
            self.rejected += 1
            raise AdmissionTimeoutError(
                f"Waited {self.queue_timeout:g} s for capacity; retry later.",
                retry_after=self.retry_after(),
            ) from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed over just as the caller went away: pass it on.
                self.release()
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        return self._clock() - started

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def retry_after(self) -> float:
        """A hint: how long until the queue ahead has drained at the current limit."""
        return max(1.0, len(self._waiters) / max(1, self.limit))

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)
