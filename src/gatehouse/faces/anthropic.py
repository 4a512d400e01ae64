"""The Anthropic Messages API as an inbound dialect. Pure translation, no I/O.

gatehouse serves ``POST /v1/messages`` so the official ``anthropic`` SDK can
reach any deployment: the request is translated to the canonical (OpenAI)
form, runs through the same pipeline as a chat completion, and the answer (or
each streamed chunk) is translated back into Messages API objects and events.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gatehouse.core.errors import GatehouseError, ValidationFailedError
from gatehouse.core.reasoning import thinking_budget
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Usage,
    stop_sequence_of,
)
from gatehouse.core.usage import TokenCounts
from gatehouse.core.validation import validation_error
from gatehouse.faces import anthropic_blocks as blocks

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
    # ``system`` mid-conversation, as Claude Code sends it (a beta of Anthropic's).
    role: Literal["user", "assistant", "system"]
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
    thinking: dict[str, Any] | None = None
    top_k: int | None = Field(default=None, ge=0)
    output_config: dict[str, Any] | None = None
    context_management: dict[str, Any] | None = None


# Messages API fields that have no meaning behind another provider's chat API.
_REFUSED = ("mcp_servers", "container")
# Anthropic's output effort -> reasoning_effort.
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "xhigh"}


def to_openai(request: MessagesRequest) -> ChatCompletionRequest:
    """The canonical chat-completion request for a Messages API request."""
    for field in _REFUSED:
        if (request.model_extra or {}).get(field) is not None:
            raise blocks.refuse(field, f"The {field!r} field")
    _check_context_management(request.context_management)
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append(blocks.system_message(request.system))
    for index, message in enumerate(request.messages):
        messages.extend(_message(message, f"messages[{index}]"))
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
        if len(request.stop_sequences) > 4:
            raise blocks.refuse("stop_sequences", "More than 4 stop sequences")
        body["stop"] = request.stop_sequences
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.top_k is not None:
        body["top_k"] = request.top_k
    if request.tools:
        body["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(request.tools)]
    if request.tool_choice:
        body["tool_choice"] = _tool_choice(request.tool_choice)
        if request.tool_choice.get("disable_parallel_tool_use"):
            body["parallel_tool_calls"] = False
    if request.thinking is not None:
        thinking_budget(request.thinking)  # a malformed setting is the client's 400
        body["thinking"] = request.thinking
    body.update(_output_config(request.output_config))
    user = (request.metadata or {}).get("user_id")
    if user:
        body["user"] = str(user)
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        # A valid Messages request can translate to an invalid chat request: messages
        # whose content is an empty list leave no message at all. The client's 400.
        raise validation_error(exc) from None


def _output_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """``output_config.effort`` as ``reasoning_effort``; nothing else of it translates."""
    if not config:
        return {}
    for key in config:
        if key != "effort":
            raise blocks.refuse(f"output_config.{key}", f"output_config.{key}")
    effort = config.get("effort")
    if effort not in _EFFORTS:
        raise ValidationFailedError(
            f"Invalid value for 'output_config.effort': expected one of {', '.join(_EFFORTS)}.",
            param="output_config.effort",
        )
    return {"reasoning_effort": _EFFORTS[effort]}


def _check_context_management(config: dict[str, Any] | None) -> None:
    """Claude Code asks to keep every thinking block (``clear_thinking`` with ``keep:
    all``), which every upstream does anyway; any edit that would change the context
    is refused by name."""
    for index, edit in enumerate((config or {}).get("edits") or []):
        if not (
            isinstance(edit, dict)
            and str(edit.get("type", "")).startswith("clear_thinking_")
            and edit.get("keep") == "all"
        ):
            raise blocks.refuse(
                f"context_management.edits[{index}]", "A context edit other than keeping all"
            )


def _message(message: InboundMessage, where: str) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    if message.role == "system":
        return [blocks.system_message(message.content)]
    if message.role == "assistant":
        return [blocks.assistant_message(message.content, where)]
    return blocks.user_messages(message.content, where)


def _tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    # A tool with a versioned type (web_search_..., bash_..., ...) runs on
    # Anthropic's servers: no other upstream can run it.
    if tool.get("type") not in (None, "custom"):
        raise blocks.refuse(f"{where}.type", f"The server tool {tool.get('type')!r}")
    function: dict[str, Any] = {
        "name": tool.get("name", ""),
        "parameters": tool.get("input_schema") or {"type": "object"},
    }
    if tool.get("description"):
        function["description"] = tool["description"]
    out: dict[str, Any] = {"type": "function", "function": function}
    if tool.get("cache_control") is not None:
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: dict[str, Any]) -> str | dict[str, Any]:
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    kinds = {"auto": "auto", "any": "required", "none": "none"}
    if kind not in kinds:
        raise blocks.refuse("tool_choice.type", f"tool_choice of type {kind!r}")
    return kinds[str(kind)]


def _stop(finish_reason: str | None, stop_sequence: str | None) -> dict[str, str | None]:
    """``stop_reason`` and ``stop_sequence`` for an OpenAI ``finish_reason`` and the
    stop sequence the upstream (or the local model) names, if it names one."""
    if stop_sequence is not None and finish_reason in (None, "stop"):
        return {"stop_reason": "stop_sequence", "stop_sequence": stop_sequence}
    reason = _STOP_REASONS.get(finish_reason or "stop", "end_turn")
    return {"stop_reason": reason, "stop_sequence": None}


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
    content: list[dict[str, Any]] = blocks.thinking_content(choice.message)
    if choice.message.content:
        content.append({"type": "text", "text": choice.message.content})
    ids = _CallIds()
    for call in choice.message.tool_calls or []:
        function = call.get("function", {})
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {}
        content.append(
            {
                "type": "tool_use",
                "id": ids.unique(call.get("id")),
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
        **_stop(choice.finish_reason, stop_sequence_of(choice)),
        "usage": _usage(usage),
    }


class _CallIds:
    """Tool-use ids unique within one answer: an upstream's missing or repeated id
    is replaced (the client sends the new one back, and the upstream sees it next turn)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def unique(self, given: Any) -> str:
        call_id = given if isinstance(given, str) and given else ""
        if not call_id or call_id in self._seen:
            call_id = f"toolu_{secrets.token_hex(12)}"
        self._seen.add(call_id)
        return call_id


def _message_id(completion_id: str) -> str:
    return completion_id if completion_id.startswith("msg_") else f"msg_{completion_id}"


def error_body(error: GatehouseError) -> dict[str, Any]:
    """The Messages API error object, its ``type`` chosen by the HTTP status
    (another 4xx is ``invalid_request_error``, as Anthropic's own errors are)."""
    status = error.http_status
    kind = _ERROR_TYPES.get(status) or (
        "invalid_request_error" if 400 <= status < 500 else "api_error"
    )
    message = error.message
    if error.param and error.param not in message:
        # Anthropic's errors have no param field: they name it first, as here.
        message = f"{error.param}: {message}"
    return {"type": "error", "error": {"type": kind, "message": message}}


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
        self._ids = _CallIds()
        self._thinking_text = False  # the open thinking block has streamed text
        self._stop: dict[str, str | None] = _stop("stop", None)
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
        for choice in chunk.choices[:1]:
            if choice.delta.reasoning_content:
                out.extend(self._open("thinking", _EMPTY_THINKING))
                self._thinking_text = True
                out.append(
                    self._delta(
                        {"type": "thinking_delta", "thinking": choice.delta.reasoning_content}
                    )
                )
            for block in choice.delta.thinking_blocks or []:
                out.extend(self._signed(block, bool(choice.delta.reasoning_content)))
            if choice.delta.content:
                out.extend(self._open("text", {"type": "text", "text": ""}))
                out.append(self._delta({"type": "text_delta", "text": choice.delta.content}))
            for call in choice.delta.tool_calls or []:
                out.extend(self._tool_call(call))
            if choice.finish_reason:
                self._stop = _stop(choice.finish_reason, stop_sequence_of(choice))
        return out

    def close(self) -> list[bytes]:
        out = self._close_block()
        out.append(
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": self._stop,
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
            call_id = self._ids.unique(call.get("id"))
            block = {"type": "tool_use", "id": call_id, "name": function.get("name", "")}
            out.extend(self._open(f"tool{index}", {**block, "input": {}}))
            self._tool_blocks[index] = self._block
        if function.get("arguments"):
            # An upstream that interleaves parallel calls' arguments: each delta
            # still names its own call's block.
            delta = {"type": "input_json_delta", "partial_json": function["arguments"]}
            out.append(self._delta(delta, self._tool_blocks[index]))
        return out

    def _signed(self, block: dict[str, Any], text_streamed: bool) -> list[bytes]:
        """A thinking block: its signature ends the open thinking block (or one of its
        own); ``redacted_thinking`` is always its own. A block without a signature is
        a piece of one (as LiteLLM streams them): its text, unless the same delta's
        ``reasoning_content`` (``text_streamed``) carried it already."""
        if block.get("type") == "redacted_thinking":
            out = self._close_block()
            out.extend(self._open("redacted", {"type": "redacted_thinking", "data": block["data"]}))
            out.extend(self._close_block())
            return out
        out = []
        if self._block_kind != "thinking":
            out.extend(self._open("thinking", _EMPTY_THINKING))
            self._thinking_text = False
        signature = block.get("signature")
        # A whole block repeats the text streamed before it; a piece carries its own.
        repeated = self._thinking_text if signature else text_streamed
        if block.get("thinking") and not repeated:
            out.append(self._delta({"type": "thinking_delta", "thinking": block["thinking"]}))
            self._thinking_text = True
        if not signature:
            return out
        out.append(self._delta({"type": "signature_delta", "signature": signature}))
        out.extend(self._close_block())
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

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        where = self._block if index is None else index
        return event(
            "content_block_delta", {"type": "content_block_delta", "index": where, "delta": delta}
        )


_EMPTY_THINKING = {"type": "thinking", "thinking": "", "signature": ""}
