"""Routing: deployments, strategies, circuit breakers, retries and fallbacks.

The router itself lives in :mod:`gatehouse.gateway.routing.router` (it depends
on the registry, which depends on the pieces exported here).
"""

from gatehouse.gateway.routing.breaker import CircuitBreaker
from gatehouse.gateway.routing.deployment import Deployment, DeploymentStats
from gatehouse.gateway.routing.hashring import HashRing

__all__ = ["CircuitBreaker", "Deployment", "DeploymentStats", "HashRing"]
