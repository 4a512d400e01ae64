"""The Anthropic Messages API as an inbound dialect. Pure translation, no I/O.

gatehouse serves ``POST /v1/messages`` so the official ``anthropic`` SDK can
reach any deployment: the request is translated to the canonical (OpenAI)
form, runs through the same pipeline as a chat completion, and the answer (or
each streamed chunk) is translated back into Messages API objects and events.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from gatehouse.core.errors import GatehouseError
from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Usage
from gatehouse.core.usage import TokenCounts

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class InboundMessage(_Wire):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class MessagesRequest(_Wire):
    """The body of ``POST /v1/messages``."""

    model: str = Field(min_length=1)
    messages: list[InboundMessage] = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


def to_openai(request: MessagesRequest) -> ChatCompletionRequest:
    """The canonical chat-completion request for a Messages API request."""
    messages: list[dict[str, Any]] = []
    if request.system:
        system = request.system
        text = system if isinstance(system, str) else _join_text(system)
        messages.append({"role": "system", "content": text})
    for message in request.messages:
        messages.extend(_message(message))
    body: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "stream": request.stream,
    }
    if request.stream:
        # The closing message_delta event carries usage, so always ask for it.
        body["stream_options"] = {"include_usage": True}
    if request.stop_sequences:
        body["stop"] = request.stop_sequences[:4]
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.get("name", ""),
                    "description": tool.get("description", ""),
                    "parameters": tool.get("input_schema") or {"type": "object"},
                },
            }
            for tool in request.tools
        ]
    if request.tool_choice:
        body["tool_choice"] = _tool_choice(request.tool_choice)
    user = (request.metadata or {}).get("user_id")
    if user:
        body["user"] = str(user)
    return ChatCompletionRequest.model_validate(body)


def _join_text(blocks: list[dict[str, Any]]) -> str:
    return "".join(b.get("text", "") for b in blocks if b.get("type") == "text")


def _message(message: InboundMessage) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    if message.role == "assistant":
        calls = [
            {
                "id": block.get("id", ""),
                "type": "function",
                "function": {
                    "name": block.get("name", ""),
                    "arguments": orjson.dumps(block.get("input") or {}).decode(),
                },
            }
            for block in message.content
            if block.get("type") == "tool_use"
        ]
        out: dict[str, Any] = {"role": "assistant", "content": _join_text(message.content)}
        if calls:
            out["tool_calls"] = calls
        return [out]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in message.content:
        kind = block.get("type")
        if kind == "tool_result":
            content = block.get("content")
            text = content if isinstance(content, str) else _join_text(content or [])
            results.append(
                {"role": "tool", "tool_call_id": block.get("tool_use_id", ""), "content": text}
            )
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block)}})
    if parts:
        results.append({"role": "user", "content": parts})
    return results


def _image_url(block: dict[str, Any]) -> str:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        return f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    return str(source.get("url", ""))


def _tool_choice(choice: dict[str, Any]) -> str | dict[str, Any]:
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    return {"any": "required", "none": "none"}.get(str(kind), "auto")


def _usage(usage: Usage | None) -> dict[str, int]:
    """Anthropic's usage: ``input_tokens`` exclude cache reads and writes, which it
    reports apart; ``output_tokens`` include thinking."""
    tokens = TokenCounts(0, 0) if usage is None else TokenCounts.of(usage)
    return {
        "input_tokens": tokens.uncached_input,
        "output_tokens": tokens.completion,
        "cache_read_input_tokens": tokens.cached,
        "cache_creation_input_tokens": tokens.cache_write,
    }


def from_openai(completion: ChatCompletion, model: str) -> dict[str, Any]:
    """The Messages API ``message`` object for a chat completion, named ``model``."""
    choice = completion.choices[0]
    content: list[dict[str, Any]] = []
    if choice.message.content:
        content.append({"type": "text", "text": choice.message.content})
    for call in choice.message.tool_calls or []:
        function = call.get("function", {})
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "input": arguments,
            }
        )
    usage = completion.usage
    return {
        "id": _message_id(completion.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _STOP_REASONS.get(choice.finish_reason or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": _usage(usage),
    }


def _message_id(completion_id: str) -> str:
    return completion_id if completion_id.startswith("msg_") else f"msg_{completion_id}"


def error_body(error: GatehouseError) -> dict[str, Any]:
    """The Messages API error object, its ``type`` chosen by the HTTP status."""
    kind = _ERROR_TYPES.get(error.http_status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


def event(name: str, data: dict[str, Any]) -> bytes:
    """One server-sent event, named as the Messages API streams name them."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class StreamTranslator:
    """Chat-completion chunks in, Messages API stream events out."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._block: int = -1  # index of the open content block, -1 when none
        self._block_kind: str | None = None
        self._tool_blocks: dict[int, int] = {}  # tool call index -> content block index
        self._stop_reason = "end_turn"
        self._usage = _usage(None)

    def feed(self, chunk: ChatCompletionChunk) -> list[bytes]:
        out: list[bytes] = []
        if not self._started:
            self._started = True
            out.append(
                event(
                    "message_start",
                    {
                        "type": "message_start",
                        "message": {
                            "id": _message_id(chunk.id),
                            "type": "message",
                            "role": "assistant",
                            "model": self._model,
                            "content": [],
                            "stop_reason": None,
                            "stop_sequence": None,
                            "usage": self._usage,
                        },
                    },
                )
            )
        if chunk.usage is not None:
            self._usage = _usage(chunk.usage)
        for choice in chunk.choices:
            if choice.delta.content:
                out.extend(self._open("text", {"type": "text", "text": ""}))
                out.append(self._delta({"type": "text_delta", "text": choice.delta.content}))
            for call in choice.delta.tool_calls or []:
                out.extend(self._tool_call(call))
            if choice.finish_reason:
                self._stop_reason = _STOP_REASONS.get(choice.finish_reason, "end_turn")
        return out

    def close(self) -> list[bytes]:
        out = self._close_block()
        out.append(
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop_reason, "stop_sequence": None},
                    "usage": self._usage,
                },
            )
        )
        out.append(event("message_stop", {"type": "message_stop"}))
        return out

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        index = int(call.get("index", 0))
        function = call.get("function") or {}
        if index not in self._tool_blocks:
            block = {"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", "")}
            out.extend(self._open(f"tool{index}", {**block, "input": {}}))
            self._tool_blocks[index] = self._block
        if function.get("arguments"):
            out.append(
                self._delta({"type": "input_json_delta", "partial_json": function["arguments"]})
            )
        return out

    def _open(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        if self._block_kind == kind:
            return []
        out = self._close_block()
        self._block += 1
        self._block_kind = kind
        out.append(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": self._block, "content_block": block},
            )
        )
        return out

    def _close_block(self) -> list[bytes]:
        if self._block_kind is None:
            return []
        self._block_kind = None
        return [event("content_block_stop", {"type": "content_block_stop", "index": self._block})]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return event(
            "content_block_delta",
            {"type": "content_block_delta", "index": self._block, "delta": delta},
        )
