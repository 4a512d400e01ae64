"""The gateway: model registry and the request pipeline in front of the providers."""

from gatehouse.gateway.registry import ModelEntry, ModelRegistry
from gatehouse.gateway.service import Check, Gateway, build_gateway

__all__ = ["Check", "Gateway", "ModelEntry", "ModelRegistry", "build_gateway"]
