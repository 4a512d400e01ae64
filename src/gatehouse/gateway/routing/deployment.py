"""A deployment: one provider behind a model group, with its live health and load."""

from __future__ import annotations

from dataclasses import dataclass, field

from gatehouse.core.config import DeploymentConfig
from gatehouse.gateway.routing.breaker import CircuitBreaker
from gatehouse.gateway.routing.capacity import Capacity
from gatehouse.providers.base import ChatProvider, EmbeddingProvider


@dataclass(slots=True)
class DeploymentStats:
    """Live figures the strategies read. Latencies are exponentially weighted averages."""

    alpha: float
    in_flight: int = 0
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
    provider: ChatProvider | EmbeddingProvider
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
