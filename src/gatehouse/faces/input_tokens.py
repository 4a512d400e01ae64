"""The bodies of the token-counting routes, as canonical chat requests. Pure.

- ``POST /v1/messages/count_tokens``: a Messages API body without
  ``max_tokens`` (Anthropic's shape), mapped by the Messages face.
- ``POST /v1/responses/input_tokens``: the Responses API's ``input``
  (a string or items), ``instructions`` and ``tools``, mapped here by a small
  mapping of its own: messages with text and image parts, ``function_call``
  and ``function_call_output`` items, function tools. What it cannot count
  (``previous_response_id``, ``conversation``, other item or tool types) is a
  400 naming the field, never a silent drop.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from gatehouse.core.errors import UnsupportedParameterError, ValidationFailedError
from gatehouse.core.types import ChatCompletionRequest
from gatehouse.faces import anthropic as messages_face


class CountTokensRequest(messages_face.MessagesRequest):
    """The body of ``POST /v1/messages/count_tokens``: ``max_tokens`` is not asked for."""

    max_tokens: int = Field(default=1, ge=1)


def messages_to_openai(request: CountTokensRequest) -> ChatCompletionRequest:
    return messages_face.to_openai(request.model_copy(update={"stream": False}))


class InputTokensRequest(BaseModel):
    """The body of ``POST /v1/responses/input_tokens`` (OpenAI's Responses shape)."""

    # What a count does not read (reasoning, text.format, truncation, ...) is let by.
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None


def responses_to_openai(request: InputTokensRequest) -> ChatCompletionRequest:
    """The chat request whose prompt is what ``request`` would send the model."""
    if not request.model:
        raise ValidationFailedError("'model' is required to count tokens", param="model")
    for name in ("previous_response_id", "conversation"):
        if getattr(request, name) is not None:
            raise UnsupportedParameterError(
                f"'{name}' is not supported when counting tokens: send the whole input",
                param=name,
            )
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    if isinstance(request.input, str):
        messages.append({"role": "user", "content": request.input})
    else:
        for index, item in enumerate(request.input or []):
            _add_item(messages, item, f"input[{index}]")
    if not messages:
        raise ValidationFailedError("'input' or 'instructions' is required", param="input")
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.tools:
        body["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(request.tools)]
    if isinstance(request.tool_choice, str):
        body["tool_choice"] = request.tool_choice
    elif isinstance(request.tool_choice, dict) and request.tool_choice.get("name"):
        body["tool_choice"] = {
            "type": "function",
            "function": {"name": request.tool_choice["name"]},
        }
    return ChatCompletionRequest.model_validate(body)


def _add_item(messages: list[dict[str, Any]], item: dict[str, Any], where: str) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in {"user", "assistant", "system", "developer"}:
            raise ValidationFailedError(f"{where}.role: unknown role {role!r}", param=where)
        messages.append({"role": role, "content": _content(item.get("content"), where)})
    elif kind == "function_call":
        call = {
            "id": item.get("call_id") or item.get("id") or "",
            "type": "function",
            "function": {"name": item.get("name", ""), "arguments": item.get("arguments", "")},
        }
        last = messages[-1] if messages else None
        # Parallel calls of one turn are one assistant message with several calls.
        if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
            last["tool_calls"].append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output", "")
        text = output if isinstance(output, str) else orjson.dumps(output).decode()
        messages.append({"role": "tool", "tool_call_id": item.get("call_id", ""), "content": text})
    elif kind == "reasoning":
        # Reasoning items carry the model's own (encrypted) state; OpenAI does not
        # bill them as input text, and there is no text here to count.
        return
    else:
        raise UnsupportedParameterError(
            f"{where}: items of type {kind!r} cannot be counted", param=where
        )


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ValidationFailedError(f"{where}.content must be a string or a list", param=where)
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in {"input_text", "output_text", "text"}:
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "refusal":
            parts.append({"type": "text", "text": part.get("refusal", "")})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            raise UnsupportedParameterError(
                f"{where}.content[{index}]: parts of type {kind!r} cannot be counted",
                param=f"{where}.content[{index}]",
            )
    return parts


def _tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise UnsupportedParameterError(
            f"{where}: tools of type {tool.get('type')!r} cannot be counted", param=where
        )
    function = {"name": tool.get("name", ""), "parameters": tool.get("parameters") or {}}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}
