"""Provider adapters: one model behind one small contract each."""

from gatehouse.providers.base import (
    ChatProvider,
    EmbeddingProvider,
    ModelInfo,
    ModelKind,
    Readiness,
)

__all__ = ["ChatProvider", "EmbeddingProvider", "ModelInfo", "ModelKind", "Readiness"]
