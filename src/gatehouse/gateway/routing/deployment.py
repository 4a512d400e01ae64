"""A deployment: one provider behind a model group, with its live health and load."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from gatehouse.core.config import DeploymentConfig
from gatehouse.core.errors import GatehouseError
from gatehouse.gateway.routing.breaker import CircuitBreaker
from gatehouse.gateway.routing.capacity import Capacity
from gatehouse.providers.base import AnyProvider


@dataclass(slots=True)
class DeploymentStats:
    """Live figures the strategies read. Latencies are exponentially weighted averages.

    The requests in flight are not here: :class:`Capacity` counts them, the one
    count there is (read it as :attr:`Deployment.in_flight`).
    """

    alpha: float
    latency: float | None = None  # seconds, whole non-streamed call
    ttft: float | None = None  # seconds to the first streamed chunk
    hold: float | None = None  # seconds a request occupies the deployment (W in L = lambda*W)
    minute: int = -1  # the minute the counters below belong to
    requests_this_minute: int = 0
    tokens_this_minute: int = 0
    requests_last_minute: int = 0
    tokens_last_minute: int = 0

    def observe_latency(self, seconds: float) -> None:
        self.latency = seconds if self.latency is None else _ewma(self.latency, seconds, self.alpha)

    def observe_hold(self, seconds: float) -> None:
        self.hold = seconds if self.hold is None else _ewma(self.hold, seconds, self.alpha)

    def observe_ttft(self, seconds: float) -> None:
        self.ttft = seconds if self.ttft is None else _ewma(self.ttft, seconds, self.alpha)

    def count(self, now: float, *, requests: int = 0, tokens: int = 0) -> None:
        self._roll(now)
        self.requests_this_minute += requests
        self.tokens_this_minute += tokens

    def usage(self, now: float) -> tuple[float, float]:
        """(requests, tokens) over a sliding minute, interpolating the previous one."""
        self._roll(now)
        weight = 1.0 - (now % 60) / 60
        return (
            self.requests_this_minute + self.requests_last_minute * weight,
            self.tokens_this_minute + self.tokens_last_minute * weight,
        )

    def _roll(self, now: float) -> None:
        minute = int(now // 60)
        if minute == self.minute:
            return
        if minute == self.minute + 1:
            self.requests_last_minute = self.requests_this_minute
            self.tokens_last_minute = self.tokens_this_minute
        else:
            self.requests_last_minute = self.tokens_last_minute = 0
        self.requests_this_minute = self.tokens_this_minute = 0
        self.minute = minute


def _ewma(previous: float, sample: float, alpha: float) -> float:
    return alpha * sample + (1 - alpha) * previous


@dataclass(slots=True, eq=False)
class Deployment:
    id: str
    group: str
    provider: AnyProvider
    config: DeploymentConfig | None  # None for the built-in local models
    breaker: CircuitBreaker
    stats: DeploymentStats
    capacity: Capacity
    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    context_window: int | None = None
    cooldown_until: float = 0.0  # an upstream's Retry-After
    attempts: int = field(default=0)
    failures: int = field(default=0)

    def can_try(self, now: float) -> bool:
        return now >= self.cooldown_until and self.breaker.can_try(now)

    def available_at(self, now: float) -> float:
        """The earliest time this deployment may take a request again."""
        reopen = self.breaker.opens_again_at() if not self.breaker.can_try(now) else None
        return max(self.cooldown_until, reopen or now)

    @property
    def in_flight(self) -> int:
        """Requests holding a slot here now: the capacity's count, the only one."""
        return self.capacity.in_flight

    async def lease(self, clock: Callable[[], float]) -> Lease:
        """Take a slot (waiting in the capacity's queue if needed) for one attempt.

        Raises the capacity's 503s (queue full, wait timed out) when none comes.
        """
        waited = await self.capacity.acquire()
        return Lease(self, clock, waited)


class Lease:
    """One request's slot at a deployment, from admission until it is given back.

    The slot is released exactly once, by :meth:`release`, which also feeds the
    hold time (W in L = lambda * W) to the limit. Used as ``async with lease:``
    around an attempt, it is released when the block ends, unless :meth:`keep`
    handed it on (a stream's relay then releases it when the stream ends).
    """

    __slots__ = ("_clock", "_kept", "_released", "deployment", "started", "waited")

    def __init__(self, deployment: Deployment, clock: Callable[[], float], waited: float) -> None:
        self.deployment = deployment
        self.waited = waited  # seconds spent in the capacity's queue
        self.started = clock()
        self._clock = clock
        self._kept = False
        self._released = False

    def keep(self) -> None:
        """Hold the slot past the ``async with`` block; the holder must :meth:`release` it."""
        self._kept = True

    def release(self, held: float | None) -> None:
        """Give the slot back (a second call does nothing).

        ``held``: seconds the request occupied the deployment, or ``None`` when
        it tells nothing about the deployment (a cancelled or crashed call).
        """
        if self._released:
            return
        self._released = True
        deployment = self.deployment
        if held is not None:
            deployment.stats.observe_hold(held)
        deployment.capacity.release()
        deployment.capacity.update(deployment.stats.hold)

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            if not self._kept:
                self.release(self._clock() - self.started)
        elif isinstance(error, GatehouseError):
            # The deployment answered, if with an error: that time counts.
            self.release(self._clock() - self.started)
        else:
            self.release(None)
