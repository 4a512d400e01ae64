"""The adapter for OpenAI-style upstreams."""

from gatehouse.providers.openai_compat.provider import OpenAICompatProvider

__all__ = ["OpenAICompatProvider"]
