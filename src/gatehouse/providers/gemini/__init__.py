"""The adapter for Google's Gemini generateContent API."""

from gatehouse.providers.gemini.provider import GeminiProvider

__all__ = ["GeminiProvider"]
