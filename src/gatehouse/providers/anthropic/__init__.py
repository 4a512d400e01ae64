"""The adapter for Anthropic's Messages API, and the inbound translation for /v1/messages."""

from gatehouse.providers.anthropic.provider import AnthropicProvider

__all__ = ["AnthropicProvider"]
