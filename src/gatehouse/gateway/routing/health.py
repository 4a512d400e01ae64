"""A snapshot of each deployment's health and load, for the admin view."""

from __future__ import annotations

from pydantic import BaseModel

from gatehouse.gateway.routing.breaker import BreakerState
from gatehouse.gateway.routing.deployment import Deployment
from gatehouse.gateway.routing.registry import ModelGroup


class DeploymentHealth(BaseModel):
    id: str
    provider: str
    model: str
    base_url: str | None
    weight: float
    state: BreakerState
    available: bool
    in_flight: int
    latency_ms: float | None
    ttft_ms: float | None
    hold_ms: float | None  # how long a request occupies the deployment (W in L = lambda*W)
    target_rps: float | None
    admission_limit: int
    queued: int
    admission_rejected: int
    attempts: int
    failures: int
    recent_failures: int
    cooldown_remaining_s: float


class GroupHealth(BaseModel):
    name: str
    strategy: str
    fallbacks: list[str]
    context_window_fallbacks: list[str]
    content_policy_fallbacks: list[str]
    deployments: list[DeploymentHealth]


def describe(groups: list[ModelGroup], now: float) -> list[GroupHealth]:
    return [
        GroupHealth(
            name=group.name,
            strategy=group.strategy,
            fallbacks=group.fallbacks,
            context_window_fallbacks=group.context_window_fallbacks,
            content_policy_fallbacks=group.content_policy_fallbacks,
            deployments=[_deployment(d, now) for d in group.deployments],
        )
        for group in groups
    ]


def _deployment(deployment: Deployment, now: float) -> DeploymentHealth:
    config = deployment.config
    stats = deployment.stats
    return DeploymentHealth(
        id=deployment.id,
        provider=config.provider if config else "local",
        model=config.model if config else deployment.id,
        base_url=config.base_url if config else None,
        weight=deployment.weight,
        state=deployment.breaker.state(now),
        available=deployment.can_try(now),
        in_flight=deployment.in_flight,
        latency_ms=None if stats.latency is None else round(stats.latency * 1000, 3),
        ttft_ms=None if stats.ttft is None else round(stats.ttft * 1000, 3),
        hold_ms=None if stats.hold is None else round(stats.hold * 1000, 3),
        target_rps=deployment.capacity.target_rps,
        admission_limit=deployment.capacity.limit,
        queued=deployment.capacity.queued,
        admission_rejected=deployment.capacity.rejected,
        attempts=deployment.attempts,
        failures=deployment.failures,
        recent_failures=deployment.breaker.recent_failures(now),
        cooldown_remaining_s=round(max(0.0, deployment.cooldown_until - now), 3),
    )
