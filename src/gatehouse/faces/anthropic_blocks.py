"""Messages API content blocks <-> canonical chat messages, for the Anthropic face. Pure.

Every block a client sends is translated or refused with a 400 naming it
(``messages[2].content[0].type``), never dropped:

- ``text`` and ``image`` (base64 or URL) become text and ``image_url`` parts,
  ``cache_control`` kept on the part;
- ``tool_use`` becomes a tool call, ``tool_result`` a ``tool`` message (its
  text and image blocks kept, ``is_error`` and ``cache_control`` too);
- ``thinking`` (with its signature) and ``redacted_thinking`` become the
  assistant message's ``thinking_blocks``, their text its ``reasoning_content``.
"""

from __future__ import annotations

from typing import Any

import orjson

from gatehouse.core.errors import UnsupportedParameterError, ValidationFailedError

_THINKING = frozenset({"thinking", "redacted_thinking"})


def refuse(param: str, what: str) -> UnsupportedParameterError:
    return UnsupportedParameterError(f"{what} cannot be translated by gatehouse", param=param)


def system_message(system: str | list[dict[str, Any]]) -> dict[str, Any]:
    """The ``system`` field as a system message: text parts when one has ``cache_control``."""
    if isinstance(system, str):
        return {"role": "system", "content": system}
    parts = [_text_part(block, f"system[{i}]") for i, block in enumerate(system)]
    if any("cache_control" in part for part in parts):
        return {"role": "system", "content": parts}
    return {"role": "system", "content": "".join(part["text"] for part in parts)}


def user_messages(content: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """A user turn: its tool results as ``tool`` messages, then the rest as one user message."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        here = f"{where}.content[{index}]"
        kind = block.get("type")
        if kind == "tool_result":
            results.append(_tool_result(block, here))
        elif kind in ("text", "image"):
            parts.append(_part(block, here))
        else:
            raise refuse(f"{here}.type", f"A {kind!r} block in a user message")
    if parts:
        results.append({"role": "user", "content": parts})
    return results


def assistant_message(content: list[dict[str, Any]], where: str) -> dict[str, Any]:
    """An assistant turn: text, tool calls and the signed thinking that came with them."""
    texts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        here = f"{where}.content[{index}]"
        kind = block.get("type")
        if kind == "text":
            texts.append(_text_part(block, here))
        elif kind == "tool_use":
            calls.append(_tool_call(block, here))
        elif kind in _THINKING:
            thinking.append(_thinking(block, here))
        else:
            raise refuse(f"{here}.type", f"A {kind!r} block in an assistant message")
    out: dict[str, Any] = {"role": "assistant"}
    if any("cache_control" in part for part in texts):
        out["content"] = texts
    else:
        out["content"] = "".join(part["text"] for part in texts)
    if calls:
        out["tool_calls"] = calls
    if thinking:
        out["thinking_blocks"] = thinking
        reasoning = "".join(b.get("thinking", "") for b in thinking)
        if reasoning:
            out["reasoning_content"] = reasoning
    return out


def _text_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    if block.get("type") != "text" or not isinstance(block.get("text"), str):
        raise refuse(f"{where}.type", f"A {block.get('type')!r} block where text belongs")
    part: dict[str, Any] = {"type": "text", "text": block["text"]}
    if block.get("cache_control") is not None:
        part["cache_control"] = block["cache_control"]
    return part


def _part(block: dict[str, Any], where: str) -> dict[str, Any]:
    if block.get("type") == "text":
        return _text_part(block, where)
    part: dict[str, Any] = {"type": "image_url", "image_url": {"url": _image_url(block, where)}}
    if block.get("cache_control") is not None:
        part["cache_control"] = block["cache_control"]
    return part


def _image_url(block: dict[str, Any], where: str) -> str:
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "base64" and isinstance(source.get("data"), str):
        return f"data:{source.get('media_type', 'image/png')};base64,{source['data']}"
    if kind == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    if kind in ("base64", "url"):
        raise ValidationFailedError(
            f"An image source of type {kind!r} needs its data", param=f"{where}.source"
        )
    raise refuse(f"{where}.source.type", f"An image source of type {kind!r}")


def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    content = block.get("content")
    out: dict[str, Any] = {"role": "tool", "tool_call_id": block.get("tool_use_id", "")}
    if content is None or isinstance(content, str):
        out["content"] = content or ""
    else:
        parts = [_part(b, f"{where}.content[{i}]") for i, b in enumerate(content)]
        plain = all(p["type"] == "text" and "cache_control" not in p for p in parts)
        out["content"] = "".join(p["text"] for p in parts) if plain else parts
    if block.get("is_error"):
        out["is_error"] = True
    if block.get("cache_control") is not None:
        out["cache_control"] = block["cache_control"]
    return out


def _tool_call(block: dict[str, Any], where: str) -> dict[str, Any]:
    call: dict[str, Any] = {
        "id": block.get("id", ""),
        "type": "function",
        "function": {
            "name": block.get("name", ""),
            "arguments": orjson.dumps(block.get("input") or {}).decode(),
        },
    }
    if block.get("cache_control") is not None:
        call["cache_control"] = block["cache_control"]
    return call


def _thinking(block: dict[str, Any], where: str) -> dict[str, Any]:
    if block["type"] == "redacted_thinking":
        if not isinstance(block.get("data"), str):
            raise ValidationFailedError("redacted_thinking needs its data", param=f"{where}.data")
        return {"type": "redacted_thinking", "data": block["data"]}
    return {
        "type": "thinking",
        "thinking": str(block.get("thinking") or ""),
        "signature": str(block.get("signature") or ""),
    }


def thinking_content(message: Any) -> list[dict[str, Any]]:
    """An answer's thinking as Messages API blocks, first in its content.

    Signed blocks come as they are; thinking text no block holds (an upstream
    that reasons without signatures, or Gemini's thought summaries beside its
    signature) fills the first block's empty text, or a block of its own."""
    blocks = [dict(block) for block in getattr(message, "thinking_blocks", None) or []]
    reasoning = getattr(message, "reasoning_content", None)
    if reasoning and not any(b.get("thinking") for b in blocks):
        empty = [b for b in blocks if b.get("type") == "thinking"]
        if empty:
            empty[0]["thinking"] = reasoning
        else:
            blocks.insert(0, {"type": "thinking", "thinking": reasoning, "signature": ""})
    return blocks
