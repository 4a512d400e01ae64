"""Routing: the model registry, deployments, capacity, strategies, breakers, retries, fallbacks.

The registry (:mod:`gatehouse.gateway.routing.registry`: public names to model
groups and their deployments) and the router itself
(:mod:`gatehouse.gateway.routing.router`) are imported from their modules: they
depend on the pieces exported here.
"""

from gatehouse.gateway.routing.breaker import CircuitBreaker
from gatehouse.gateway.routing.deployment import Deployment, DeploymentStats
from gatehouse.gateway.routing.hashring import HashRing

__all__ = ["CircuitBreaker", "Deployment", "DeploymentStats", "HashRing"]
