"""The adapter for OpenAI-style upstreams."""

from gatehouse.providers.openai_compat.provider import OpenAICompatProvider, OpenAIResponsesProvider

__all__ = ["OpenAICompatProvider", "OpenAIResponsesProvider"]
