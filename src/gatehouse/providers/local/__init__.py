"""In-process models: SmolLM2 chat through llama.cpp, MiniLM embeddings."""

from gatehouse.providers.local.chat import LlamaChatProvider
from gatehouse.providers.local.embeddings import MiniLMEmbeddingProvider

__all__ = ["LlamaChatProvider", "MiniLMEmbeddingProvider"]
