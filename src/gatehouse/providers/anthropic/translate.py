"""OpenAI-shaped requests to the Anthropic Messages API and back. Pure, no I/O.

Outbound (gatehouse calling Anthropic): :func:`request_to_wire`,
:func:`response_from_wire`, and :class:`StreamTranslator` which turns
Messages API stream events into chat-completion chunks one by one.
"""

from __future__ import annotations

from typing import Any

import orjson

from gatehouse.core.errors import UnsupportedParameterError, UpstreamError, ValidationFailedError
from gatehouse.core.reasoning import EFFORT_BUDGETS, check_effort, thinking_budget
from gatehouse.core.types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
    stop_fields,
)
from gatehouse.core.usage import billed_usage
from gatehouse.providers.anthropic import blocks

DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024
# reasoning_effort -> Anthropic's output_config.effort (with adaptive thinking).
OUTPUT_EFFORTS = {
    "none": "low",
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "max",
}

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
    body: dict[str, Any] = {
        "model": upstream_model,
        "messages": blocks.turns(request.messages),
        "max_tokens": request.token_limit() or DEFAULT_MAX_TOKENS,
    }
    system = blocks.system_blocks(request.messages)
    if system:
        body["system"] = system
    if request.temperature is not None:
        # Anthropic accepts 0..1 where OpenAI accepts 0..2: values pass through,
        # clipped to Anthropic's maximum.
        body["temperature"] = min(request.temperature, 1.0)
    if request.top_p is not None:
        body["top_p"] = request.top_p
    top_k = (request.model_extra or {}).get("top_k")
    if top_k is not None:
        body["top_k"] = top_k
    stops = request.stop_sequences()
    if stops:
        body["stop_sequences"] = stops
    if request.stream:
        body["stream"] = True
    if request.tools:
        body["tools"] = [blocks.tool(tool, f"tools[{i}]") for i, tool in enumerate(request.tools)]
    parallel = (request.model_extra or {}).get("parallel_tool_calls")
    if request.tools and (request.tool_choice is not None or parallel is False):
        body["tool_choice"] = blocks.tool_choice(request.tool_choice or "auto", parallel)
    if request.user:
        body["metadata"] = {"user_id": request.user}
    _thinking(request, body)
    return body


def _thinking(request: ChatCompletionRequest, body: dict[str, Any]) -> None:
    """``thinking`` from the exact budget, else from ``reasoning_effort`` by the table
    of docs/translation.md; ``max_tokens`` made room for it when the client set none."""
    if request.thinking is not None:
        budget = thinking_budget(request.thinking)
        if request.thinking.get("type") != "enabled":
            # Adaptive thinking takes its depth from the output effort.
            body["thinking"] = dict(request.thinking)
            effort = request.reasoning_effort
            if effort is not None and request.thinking.get("type") == "adaptive":
                body["output_config"] = {"effort": OUTPUT_EFFORTS[check_effort(effort)]}
            return
    elif request.reasoning_effort is not None:
        budget = EFFORT_BUDGETS[check_effort(request.reasoning_effort)]
        if not budget:
            body["thinking"] = {"type": "disabled"}
            return
    else:
        return
    assert budget is not None
    if request.token_limit() is None:
        body["max_tokens"] = budget + DEFAULT_MAX_TOKENS
    elif budget >= body["max_tokens"]:
        # Anthropic wants the budget below max_tokens; an effort's budget shrinks
        # to fit, an exact budget the client chose is its own to fix.
        if request.thinking is not None or body["max_tokens"] <= MIN_THINKING_BUDGET:
            raise ValidationFailedError(
                f"Anthropic needs max_tokens above the thinking budget ({budget}) and above "
                f"{MIN_THINKING_BUDGET}",
                param="max_tokens",
            )
        budget = body["max_tokens"] - 1
    body["thinking"] = {"type": "enabled", "budget_tokens": max(budget, MIN_THINKING_BUDGET)}


def usage_from_wire(usage: dict[str, Any]) -> Usage:
    """Canonical usage from Anthropic's, whose ``input_tokens`` exclude cache reads
    and writes and whose ``output_tokens`` include thinking (not reported apart)."""
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    return billed_usage(
        input=int(usage.get("input_tokens") or 0) + cache_read + cache_write,
        cache_read=cache_read,
        cache_write=cache_write,
        output=int(usage.get("output_tokens") or 0),
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
        thinking = [thinking_block(b) for b in data["content"] if b.get("type") in _THINKING]
        reasoning = "".join(b.get("thinking", "") for b in thinking)
        message = AssistantMessage(
            content=text or None,
            tool_calls=calls or None,
            reasoning_content=reasoning or None,
            thinking_blocks=thinking or None,
        )
        return ChatCompletion(
            id=data.get("id", "msg"),
            created=created,
            model=data.get("model", ""),
            choices=[
                Choice(
                    message=message,
                    finish_reason=STOP_REASONS.get(data.get("stop_reason") or "", "stop"),
                    **stop_fields(_stop_sequence(data)),
                )
            ],
            usage=usage_from_wire(data.get("usage") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(f"Anthropic answered with a malformed message: {exc}") from None


def _stop_sequence(message: dict[str, Any]) -> str | None:
    """The stop sequence a message (or a stream's ``message_delta``) ended on:
    "stop_sequence" folds into OpenAI's "stop", so it rides along as ``stop_reason``."""
    if message.get("stop_reason") != "stop_sequence":
        return None
    stop = message.get("stop_sequence")
    return stop if isinstance(stop, str) else None


_THINKING = frozenset({"thinking", "redacted_thinking"})


def thinking_block(block: dict[str, Any]) -> dict[str, Any]:
    """A thinking (or redacted_thinking) content block as a canonical thinking block."""
    if block["type"] == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block["data"]}
    return {"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]}


class StreamTranslator:
    """Messages API stream events in, chat-completion chunks out."""

    def __init__(self, created: int) -> None:
        self._created = created
        self._id = "msg"
        self._model = ""
        self._usage: dict[str, Any] = {}
        self._tool_index: dict[int, int] = {}  # content block index -> tool call index
        self._thinking: dict[int, dict[str, Any]] = {}  # open thinking blocks, by block index
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
            if block.get("type") == "redacted_thinking":
                return [self._chunk(Delta(thinking_blocks=[thinking_block(block)]))]
            if block.get("type") == "thinking":
                self._thinking[event.get("index", 0)] = {
                    "type": "thinking",
                    "thinking": block.get("thinking", ""),
                    "signature": block.get("signature", ""),
                }
                return []
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
            if delta.get("type") == "thinking_delta":
                self._open_thinking(event)["thinking"] += delta.get("thinking", "")
                return [self._chunk(Delta(reasoning_content=delta.get("thinking", "")))]
            if delta.get("type") == "signature_delta":
                self._open_thinking(event)["signature"] += delta.get("signature", "")
                return []
            if delta.get("type") == "input_json_delta":
                position = self._tool_index.get(event.get("index", 0), 0)
                call = {"index": position, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk(Delta(tool_calls=[call]))]
            return []
        if kind == "content_block_stop" and event.get("index", 0) in self._thinking:
            # A signed block goes out whole, once its signature is known.
            done = self._thinking.pop(event.get("index", 0))
            return [self._chunk(Delta(thinking_blocks=[done]))]
        if kind == "message_delta":
            self._usage.update(event.get("usage") or {})
            delta = event.get("delta") or {}
            finish = STOP_REASONS.get(delta.get("stop_reason") or "", "stop")
            return [self._chunk(Delta(), finish, _stop_sequence(delta))]
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

    def _open_thinking(self, event: dict[str, Any]) -> dict[str, Any]:
        block = self._thinking.get(event.get("index", 0))
        if block is None:
            raise UpstreamError("Anthropic streamed thinking outside a thinking block")
        return block

    def _chunk(
        self, delta: Delta, finish: str | None = None, stop: str | None = None
    ) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self._id,
            created=self._created,
            model=self._model,
            choices=[ChunkChoice(delta=delta, finish_reason=finish, **stop_fields(stop))],
        )
