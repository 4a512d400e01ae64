"""Routing strategies: pick one deployment among the available ones. Pure functions.

Every strategy receives only deployments that may take a request now (breaker
closed or probing, no Retry-After cooldown running), and at least one: the
router waits or refuses when none may (``Router._wait_for_one``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from gatehouse.core.config import Strategy
from gatehouse.gateway.routing.deployment import Deployment
from gatehouse.gateway.routing.hashring import HashRing


def choose(
    strategy: Strategy,
    candidates: Sequence[Deployment],
    *,
    now: float,
    rng: random.Random,
    streaming: bool = False,
    affinity_key: str | None = None,
    ring: HashRing | None = None,
    load_factor: float = 1.25,
) -> Deployment:
    if len(candidates) == 1:
        return candidates[0]
    if strategy == "least_inflight":
        return _lowest(candidates, rng, lambda d: d.in_flight)
    if strategy == "lowest_latency":
        # Unmeasured deployments count as fastest, so each gets explored once.
        return _lowest(
            candidates, rng, lambda d: (d.stats.ttft if streaming else d.stats.latency) or 0.0
        )
    if strategy == "lowest_usage":
        return _lowest(candidates, rng, lambda d: _utilisation(d, now))
    if strategy == "prefix_affinity" and ring is not None and affinity_key is not None:
        by_id = {d.id: d for d in candidates}
        chosen = ring.lookup(
            affinity_key,
            loads={d.id: d.in_flight for d in candidates},
            load_factor=load_factor,
            available=by_id.__contains__,
        )
        if chosen is not None:
            return by_id[chosen]
    return weighted(candidates, rng)


def weighted(candidates: Sequence[Deployment], rng: random.Random) -> Deployment:
    return rng.choices(list(candidates), weights=[d.weight for d in candidates])[0]


def _lowest(
    candidates: Sequence[Deployment], rng: random.Random, score: Callable[[Deployment], float]
) -> Deployment:
    best = min(score(d) for d in candidates)
    tied = [d for d in candidates if score(d) == best]
    return weighted(tied, rng)


def _utilisation(deployment: Deployment, now: float) -> float:
    """Share of the deployment's capacity used in the last minute (the larger of RPM, TPM)."""
    requests, tokens = deployment.stats.usage(now)
    shares = []
    if deployment.rpm:
        shares.append(requests / deployment.rpm)
    if deployment.tpm:
        shares.append(tokens / deployment.tpm)
    # Without declared capacity, fall back to raw request counts scaled by weight.
    return max(shares) if shares else requests / deployment.weight
