"""The adapter for Anthropic's Messages API (outbound; the inbound face is gatehouse.faces)."""

from gatehouse.providers.anthropic.provider import AnthropicProvider

__all__ = ["AnthropicProvider"]
