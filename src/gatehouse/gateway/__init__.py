"""The gateway: model registry and the request pipeline in front of the providers."""

from gatehouse.gateway.client import CallerClient, ModelClient
from gatehouse.gateway.pipeline import (
    CallContext,
    ChatStream,
    Next,
    Result,
    Stage,
    chain,
)
from gatehouse.gateway.routing.registry import ModelEntry, ModelGroup, ModelRegistry
from gatehouse.gateway.service import Check, Gateway, build_gateway

__all__ = [
    "CallContext",
    "CallerClient",
    "ChatStream",
    "Check",
    "Gateway",
    "ModelClient",
    "ModelEntry",
    "ModelGroup",
    "ModelRegistry",
    "Next",
    "Result",
    "Stage",
    "build_gateway",
    "chain",
]
