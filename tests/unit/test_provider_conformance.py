"""Every hosted-provider adapter runs the provider conformance suite.

The wire fixtures are the ones the translation and transport tests already
use, where they fit; what an adapter's upstream sends that no other test
needed (an error body in its dialect, a usage report) is written here.

The in-process local chat model is not in this list: it has no upstream, so
no wire, and loading it takes seconds; its own tests
(``tests/integration/test_local_*.py``) cover its stream and usage.
"""

from __future__ import annotations

from typing import Any

import orjson

from gatehouse.providers.anthropic import AnthropicProvider
from gatehouse.providers.gemini import GeminiProvider
from gatehouse.providers.openai_compat import OpenAICompatProvider

from .provider_conformance import ProviderConformance
from .test_provider_transport import COMPLETION, SSE
from .test_translate_anthropic import MESSAGE_RESPONSE, STREAM


def sse(events: list[Any], *, named: bool = False) -> bytes:
    """``data:`` events, each after an ``event:`` line with its type when ``named``."""
    lines = []
    for event in events:
        name = b"event: " + str(event["type"]).encode() + b"\n" if named else b""
        lines.append(name + b"data: " + orjson.dumps(event) + b"\n\n")
    return b"".join(lines)


OPENAI_USAGE = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 0,
    "model": "up-model",
    "choices": [],
    "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
}
# SSE ends with [DONE]; the usage chunk an upstream sends when asked comes before it.
OPENAI_STREAM = SSE.replace(
    b"data: [DONE]", b"data: " + orjson.dumps(OPENAI_USAGE) + b"\n\ndata: [DONE]"
)


OPENAI_TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "f", "arguments": "{}"},
}
OPENAI_ANSWER = {
    **COMPLETION,
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": None, "tool_calls": [OPENAI_TOOL_CALL]},
        }
    ],
}


class TestOpenAICompat(ProviderConformance):
    provider_name = "openai_compat"
    provider_class = OpenAICompatProvider
    answer = orjson.dumps(OPENAI_ANSWER)
    has_tool_call = True
    stream = OPENAI_STREAM
    auth_header = ("authorization", "Bearer sk-conf")

    def error_body(self, status: int, message: str) -> bytes:
        kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status, "server_error")
        return orjson.dumps({"error": {"message": message, "type": kind, "code": None}})


class TestAzure(TestOpenAICompat):
    """The same adapter, with Azure's path and ``api-key`` header."""

    provider_name = "azure"
    auth_header = ("api-key", "sk-conf")


class TestAnthropic(ProviderConformance):
    provider_name = "anthropic"
    provider_class = AnthropicProvider
    answer = orjson.dumps(MESSAGE_RESPONSE)
    stream = sse(STREAM, named=True)
    auth_header = ("x-api-key", "sk-conf")
    has_tool_call = True

    def error_body(self, status: int, message: str) -> bytes:
        kind = {429: "rate_limit_error", 401: "authentication_error"}.get(status, "api_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def gemini_event(text: str, finish: str | None = None, **usage: int) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": usage}


GEMINI_ANSWER = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [{"text": "Calling."}, {"functionCall": {"name": "f", "args": {"x": 2}}}],
            },
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 3, "totalTokenCount": 11},
}


class TestGemini(ProviderConformance):
    provider_name = "gemini"
    provider_class = GeminiProvider
    answer = orjson.dumps(GEMINI_ANSWER)
    stream = sse(
        [
            gemini_event("Hel", promptTokenCount=4),
            gemini_event("lo", promptTokenCount=4, candidatesTokenCount=1),
            gemini_event("", "STOP", promptTokenCount=4, candidatesTokenCount=2),
        ]
    )
    auth_header = ("x-goog-api-key", "sk-conf")
    has_tool_call = True

    def error_body(self, status: int, message: str) -> bytes:
        kind = {429: "RESOURCE_EXHAUSTED", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}
        error = {"code": status, "message": message, "status": kind.get(status, "INTERNAL")}
        return orjson.dumps({"error": error})
