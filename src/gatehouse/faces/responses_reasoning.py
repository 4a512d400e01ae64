"""Reasoning items of the Responses API <-> the canonical reasoning state. Pure, no I/O.

A chat answer's ``reasoning_content`` becomes a ``reasoning`` output item's
summary, and its ``thinking_blocks`` (Anthropic's signed thinking, Gemini's
thought signatures) its ``encrypted_content``: ``gh1.`` and the blocks as
URL-safe base64 JSON, opaque to the client as OpenAI's own is. When the
client sends the item back (or a stored response chains it with
``previous_response_id``), the blocks join the assistant turn they came with,
so the upstream gets its reasoning back, as on the other faces
(docs/translation.md). An ``encrypted_content`` gatehouse did not make (OpenAI's
own) cannot be read for another upstream: a 400 naming it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from gatehouse.core.errors import UnsupportedParameterError, ValidationFailedError
from gatehouse.faces.responses_items import IdFactory, ReasoningItem, SummaryText

_PREFIX = "gh1."


def encode_state(blocks: list[dict[str, Any]]) -> str:
    return _PREFIX + base64.urlsafe_b64encode(orjson.dumps(blocks)).decode()


def decode_state(content: str, param: str) -> list[dict[str, Any]]:
    if not content.startswith(_PREFIX):
        raise UnsupportedParameterError(
            "Reasoning that gatehouse did not produce cannot be sent to this model",
            param=param,
        )
    try:
        blocks = orjson.loads(base64.urlsafe_b64decode(content[len(_PREFIX) :]))
    except (binascii.Error, ValueError):
        raise ValidationFailedError(
            f"Invalid value for '{param}': not the reasoning gatehouse gave.", param=param
        ) from None
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise ValidationFailedError(
            f"Invalid value for '{param}': not the reasoning gatehouse gave.", param=param
        )
    return blocks


def output_item(message: Any, ids: IdFactory) -> ReasoningItem | None:
    """The reasoning item of a chat answer's message, or ``None`` when it has none."""
    text = getattr(message, "reasoning_content", None)
    blocks = getattr(message, "thinking_blocks", None)
    if not text and not blocks:
        return None
    return ReasoningItem(
        id=ids("rs"),
        summary=[SummaryText(text=text)] if text else [],
        encrypted_content=encode_state(blocks) if blocks else None,
    )


def foreign(content: str) -> bool:
    """Whether ``content`` is reasoning state that gatehouse did not encode (an
    upstream's own, from a native Responses call)."""
    return not content.startswith(_PREFIX)


def input_item(
    raw: dict[str, Any], where: str, ids: IdFactory, *, foreign_ok: bool = False
) -> ReasoningItem:
    """A ``reasoning`` input item as the client sent it back; with ``foreign_ok``,
    state gatehouse did not encode is kept as it is (for a native upstream)."""
    unknown = set(raw) - {"type", "id", "summary", "encrypted_content", "status", "content"}
    if unknown:
        raise UnsupportedParameterError(
            f"The reasoning item field {sorted(unknown)[0]!r} is not supported by gatehouse.",
            param=f"{where}.{sorted(unknown)[0]}",
        )
    summary = []
    for index, part in enumerate(raw.get("summary") or []):
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            raise ValidationFailedError(
                f"Invalid value for '{where}.summary[{index}]': expected a summary_text part.",
                param=f"{where}.summary[{index}]",
            )
        summary.append(SummaryText(text=part["text"]))
    if raw.get("content"):
        raise UnsupportedParameterError(
            "Raw reasoning text in an input item is not supported by gatehouse.",
            param=f"{where}.content",
        )
    encrypted = raw.get("encrypted_content")
    if encrypted is not None:
        if not isinstance(encrypted, str):
            raise ValidationFailedError(
                f"Invalid value for '{where}.encrypted_content': expected a string.",
                param=f"{where}.encrypted_content",
            )
        if not (foreign_ok and foreign(encrypted)):
            decode_state(encrypted, f"{where}.encrypted_content")
    given = raw.get("id")
    return ReasoningItem(
        id=given if isinstance(given, str) and given else ids("rs"),
        summary=summary,
        encrypted_content=encrypted,
    )


def join_turn(messages: list[dict[str, Any]], item: ReasoningItem, where: str) -> None:
    """Put a reasoning item's state on the assistant turn it belongs to: the one it
    follows (reasoning streamed after the text), else a new one that the message
    and calls after it join."""
    blocks = decode_state(item.encrypted_content, where) if item.encrypted_content else []
    text = "".join(part.text for part in item.summary)
    last = messages[-1] if messages else None
    if last is None or last["role"] != "assistant":
        last = {"role": "assistant", "content": None}
        messages.append(last)
    if text:
        last["reasoning_content"] = (last.get("reasoning_content") or "") + text
    if blocks:
        last.setdefault("thinking_blocks", []).extend(blocks)
