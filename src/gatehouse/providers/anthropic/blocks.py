"""Canonical chat messages as Messages API turns and content blocks. Pure, no I/O.

What the canonical (OpenAI-shaped) message carries beyond OpenAI's own fields
reaches Anthropic intact: ``cache_control`` on system, text, image and
tool-result parts and on tools; ``thinking_blocks`` (with their signatures, and
``redacted_thinking``) first in an assistant turn; ``is_error`` on a tool result.
"""

from __future__ import annotations

from typing import Any

from gatehouse.core.errors import UnsupportedParameterError, ValidationFailedError
from gatehouse.core.types import ChatMessage, ImagePart, TextPart
from gatehouse.providers.wire import add_turn, gemini_signature, json_object, split_data_url


def system_blocks(messages: list[ChatMessage]) -> str | list[dict[str, Any]] | None:
    """The ``system`` field: a string, or text blocks when one carries ``cache_control``."""
    blocks: list[dict[str, Any]] = []
    for message in messages:
        if message.role not in {"system", "developer"}:
            continue
        if isinstance(message.content, list):
            blocks.extend(_text_block(p) for p in message.content if isinstance(p, TextPart))
        elif message.content:
            blocks.append({"type": "text", "text": message.content})
    if not blocks:
        return None
    if any("cache_control" in block for block in blocks):
        return blocks
    return "\n\n".join(block["text"] for block in blocks)


def turns(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """The ``messages`` field: user and assistant turns, tool results in user turns."""
    out: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        where = f"messages[{position}]"
        if message.role in {"system", "developer"}:
            continue
        if message.role in {"tool", "function"}:
            add_turn(out, "user", "content", [_tool_result(message, where)])
        elif message.role == "assistant":
            add_turn(out, "assistant", "content", _assistant_blocks(message, where))
        else:
            add_turn(out, "user", "content", content_blocks(message, where))
    return out


def _assistant_blocks(message: ChatMessage, where: str) -> list[dict[str, Any]]:
    # Anthropic wants an assistant turn's thinking first; a block another provider
    # signed (or none signed) cannot be verified here and stays out, as Anthropic
    # allows for earlier turns (docs/translation.md).
    blocks = [
        dict(block)
        for block in message.thinking_blocks or []
        if (block.get("type") == "thinking" and _own(block.get("signature")))
        or (block.get("type") == "redacted_thinking" and block.get("data"))
    ]
    if isinstance(message.content, list):
        blocks.extend(content_blocks(message, where))
    elif message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls or []:
        function = call.get("function", {})
        block = {
            "type": "tool_use",
            "id": call.get("id", ""),
            "name": function.get("name", ""),
            "input": json_object(function.get("arguments") or "{}"),
        }
        if "cache_control" in call:
            block["cache_control"] = call["cache_control"]
        blocks.append(block)
    return blocks


def _own(signature: Any) -> bool:
    return isinstance(signature, str) and bool(signature) and gemini_signature(signature) is None


def _tool_result(message: ChatMessage, where: str) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": message.tool_call_id or message.name or "",
    }
    if isinstance(message.content, list):
        block["content"] = content_blocks(message, where)
    else:
        block["content"] = message.content or ""
    extra = message.model_extra or {}
    if extra.get("is_error"):
        block["is_error"] = True
    if "cache_control" in extra:
        block["cache_control"] = extra["cache_control"]
    return block


def content_blocks(message: ChatMessage, where: str) -> list[dict[str, Any]]:
    """A message's content as text and image blocks, ``cache_control`` kept."""
    if message.content is None or isinstance(message.content, str):
        return [{"type": "text", "text": message.content or ""}]
    blocks: list[dict[str, Any]] = []
    for index, part in enumerate(message.content):
        if isinstance(part, TextPart):
            blocks.append(_text_block(part))
        elif isinstance(part, ImagePart):
            if not part.image_url.url:
                raise ValidationFailedError(
                    "An image part needs a URL or a data URL",
                    param=f"{where}.content[{index}].image_url.url",
                )
            block: dict[str, Any] = {"type": "image", "source": image_source(part.image_url.url)}
            _keep_cache_control(part, block)
            blocks.append(block)
    return blocks


def _text_block(part: TextPart) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": part.text}
    _keep_cache_control(part, block)
    return block


def _keep_cache_control(part: TextPart | ImagePart, block: dict[str, Any]) -> None:
    cache_control = (part.model_extra or {}).get("cache_control")
    if cache_control is not None:
        block["cache_control"] = cache_control


def image_source(url: str) -> dict[str, str]:
    """An Anthropic image source from an OpenAI image URL (``data:`` URLs become base64)."""
    inline = split_data_url(url)
    if inline is not None:
        return {"type": "base64", "media_type": inline[0], "data": inline[1]}
    return {"type": "url", "url": url}


def tool(entry: dict[str, Any], where: str) -> dict[str, Any]:
    """An OpenAI function tool as an Anthropic tool, ``cache_control`` kept."""
    if entry.get("type", "function") != "function":
        raise UnsupportedParameterError(
            f"The tool type {entry.get('type')!r} cannot be sent to Anthropic",
            param=f"{where}.type",
        )
    function = entry.get("function", entry)
    out: dict[str, Any] = {
        "name": function.get("name", ""),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    cache_control = entry.get("cache_control", function.get("cache_control"))
    if cache_control is not None:
        out["cache_control"] = cache_control
    return out


def tool_choice(choice: str | dict[str, Any], parallel: bool | None) -> dict[str, Any]:
    """OpenAI's ``tool_choice`` (and ``parallel_tool_calls: false``) as Anthropic's."""
    out: dict[str, Any]
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if choice.get("type") != "function" or not isinstance(name, str) or not name:
            raise UnsupportedParameterError(
                f"tool_choice of type {choice.get('type')!r} cannot be sent to Anthropic",
                param="tool_choice",
            )
        out = {"type": "tool", "name": name}
    else:
        kinds = {"auto": "auto", "required": "any", "none": "none"}
        if choice not in kinds:
            raise UnsupportedParameterError(
                f"tool_choice {choice!r} is not one of auto, none, required", param="tool_choice"
            )
        out = {"type": kinds[choice]}
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out
