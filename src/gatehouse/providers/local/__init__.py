"""In-process models: SmolLM2 chat through llama.cpp, MiniLM embeddings, and
``local/rerank`` (a local cross-encoder, or MiniLM's cosine)."""

from gatehouse.providers.local.chat import LlamaChatProvider
from gatehouse.providers.local.embeddings import MiniLMEmbeddingProvider
from gatehouse.providers.local.rerank import LocalReranker

__all__ = ["LlamaChatProvider", "LocalReranker", "MiniLMEmbeddingProvider"]
