"""OpenAI-shaped requests to the Anthropic Messages API and back. Pure, no I/O.

Outbound (gatehouse calling Anthropic): :func:`request_to_wire`,
:func:`response_from_wire`, and :class:`StreamTranslator` which turns
Messages API stream events into chat-completion chunks one by one.
"""

from __future__ import annotations

from typing import Any

import orjson

from gatehouse.core.errors import UnsupportedParameterError, UpstreamError
from gatehouse.core.types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChunkChoice,
    Delta,
    ImagePart,
    TextPart,
    Usage,
)
from gatehouse.providers.wire import add_turn, json_object, split_data_url

DEFAULT_MAX_TOKENS = 4096

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}


def request_to_wire(request: ChatCompletionRequest, upstream_model: str) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat request."""
    if request.n != 1:
        raise UnsupportedParameterError(
            "Anthropic models return one choice; n must be 1", param="n"
        )
    if request.response_format and request.response_format.get("type") != "text":
        raise UnsupportedParameterError(
            "Anthropic deployments do not support response_format", param="response_format"
        )
    system = [m.text() for m in request.messages if m.role in {"system", "developer"}]
    body: dict[str, Any] = {
        "model": upstream_model,
        "messages": _messages(request.messages),
        "max_tokens": request.token_limit() or DEFAULT_MAX_TOKENS,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if request.temperature is not None:
        # Anthropic accepts 0..1 where OpenAI accepts 0..2: values pass through,
        # clipped to Anthropic's maximum.
        body["temperature"] = min(request.temperature, 1.0)
    if request.top_p is not None:
        body["top_p"] = request.top_p
    stops = request.stop_sequences()
    if stops:
        body["stop_sequences"] = stops
    if request.stream:
        body["stream"] = True
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
    if request.tool_choice is not None and request.tools:
        body["tool_choice"] = _tool_choice(request.tool_choice)
        if (request.model_extra or {}).get("parallel_tool_calls") is False:
            body["tool_choice"]["disable_parallel_tool_use"] = True
    if request.user:
        body["metadata"] = {"user_id": request.user}
    return body


def _messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role in {"system", "developer"}:
            continue
        if message.role in {"tool", "function"}:
            role = "user"
            blocks: list[dict[str, Any]] = [
                {
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id or message.name or "",
                    "content": message.text(),
                }
            ]
        elif message.role == "assistant":
            role = "assistant"
            blocks = [{"type": "text", "text": message.text()}] if message.text() else []
            for call in message.tool_calls or []:
                function = call.get("function", {})
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": function.get("name", ""),
                        "input": json_object(function.get("arguments") or "{}"),
                    }
                )
        else:
            role = "user"
            blocks = _content_blocks(message)
        add_turn(out, role, "content", blocks)
    return out


def _content_blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.content is None or isinstance(message.content, str):
        return [{"type": "text", "text": message.content or ""}]
    blocks: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append({"type": "image", "source": image_source(part.image_url.url)})
    return blocks


def image_source(url: str) -> dict[str, str]:
    """An Anthropic image source from an OpenAI image URL (``data:`` URLs become base64)."""
    inline = split_data_url(url)
    if inline is not None:
        return {"type": "base64", "media_type": inline[0], "data": inline[1]}
    return {"type": "url", "url": url}


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function", tool)
    out: dict[str, Any] = {
        "name": function.get("name", ""),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return {"type": "tool", "name": name} if name else {"type": "auto"}
    return {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}.get(
        choice, {"type": "auto"}
    )


def usage_from_wire(usage: dict[str, Any]) -> Usage:
    """OpenAI usage from Anthropic's: cache reads and writes count as prompt tokens."""
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cache_read + cache_write
    completion = int(usage.get("output_tokens") or 0)
    return Usage.model_validate(
        {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cache_read},
            "cache_creation_input_tokens": cache_write,
        }
    )


def response_from_wire(data: dict[str, Any], created: int) -> ChatCompletion:
    try:
        text = "".join(b.get("text", "") for b in data["content"] if b.get("type") == "text")
        calls = [
            {
                "id": b["id"],
                "type": "function",
                "function": {"name": b["name"], "arguments": orjson.dumps(b["input"]).decode()},
            }
            for b in data["content"]
            if b.get("type") == "tool_use"
        ]
        return ChatCompletion(
            id=data.get("id", "msg"),
            created=created,
            model=data.get("model", ""),
            choices=[
                Choice(
                    message=AssistantMessage(content=text or None, tool_calls=calls or None),
                    finish_reason=STOP_REASONS.get(data.get("stop_reason") or "", "stop"),
                )
            ],
            usage=usage_from_wire(data.get("usage") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(f"Anthropic answered with a malformed message: {exc}") from None


class StreamTranslator:
    """Messages API stream events in, chat-completion chunks out."""

    def __init__(self, created: int) -> None:
        self._created = created
        self._id = "msg"
        self._model = ""
        self._usage: dict[str, Any] = {}
        self._tool_index: dict[int, int] = {}  # content block index -> tool call index
        self.finished = False

    def feed(self, event: dict[str, Any]) -> list[ChatCompletionChunk]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message", {})
            self._id = message.get("id", self._id)
            self._model = message.get("model", self._model)
            self._usage.update(message.get("usage") or {})
            return [self._chunk(Delta(role="assistant", content=""))]
        if kind == "content_block_start":
            block = event.get("content_block", {})
            if block.get("type") != "tool_use":
                return []
            position = len(self._tool_index)
            self._tool_index[event.get("index", 0)] = position
            call = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk(Delta(tool_calls=[call]))]
        if kind == "content_block_delta":
            delta = event.get("delta", {})
            if delta.get("type") == "text_delta":
                return [self._chunk(Delta(content=delta.get("text", "")))]
            if delta.get("type") == "input_json_delta":
                position = self._tool_index.get(event.get("index", 0), 0)
                call = {"index": position, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk(Delta(tool_calls=[call]))]
            return []
        if kind == "message_delta":
            self._usage.update(event.get("usage") or {})
            reason = (event.get("delta") or {}).get("stop_reason")
            finish = STOP_REASONS.get(reason or "", "stop")
            return [self._chunk(Delta(), finish)]
        if kind == "message_stop":
            self.finished = True
            return [
                ChatCompletionChunk(
                    id=self._id,
                    created=self._created,
                    model=self._model,
                    choices=[],
                    usage=usage_from_wire(self._usage),
                )
            ]
        if kind == "error":
            error = event.get("error") or {}
            raise UpstreamError(f"Anthropic failed mid-stream: {error.get('message', 'error')}")
        return []  # ping, content_block_stop, unknown future events

    def _chunk(self, delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self._id,
            created=self._created,
            model=self._model,
            choices=[ChunkChoice(delta=delta, finish_reason=finish)],
        )
