"""Canonical chat messages as Gemini ``contents``. Pure, no I/O.

Assistant turns get their thought signatures back (from the tool call ids and
from ``thinking_blocks`` that Gemini signed, see :mod:`.calls`); a tool message
becomes a ``functionResponse`` named after the call it answers. Images become
``inlineData`` (data URLs) or ``fileData`` (``gs://`` and Gemini Files API
URIs); Gemini fetches no other URL, so any other is a 400 naming the part.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from gatehouse.core.errors import UnsupportedParameterError
from gatehouse.core.types import ChatMessage, ImagePart, TextPart
from gatehouse.providers.gemini.calls import SKIP_SIGNATURE, split_call_id
from gatehouse.providers.wire import add_turn, gemini_signature, json_object, split_data_url

# URIs that Gemini's fileData reads: Cloud Storage and its own Files API.
_FILE_URIS = ("gs://", "https://generativelanguage.googleapis.com/")


def contents(messages: list[ChatMessage], *, needs_signatures: bool) -> list[dict[str, Any]]:
    """``needs_signatures``: the model (Gemini 3) refuses a function call turn without
    a signature, so a call that has none gets Google's documented placeholder."""
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for function responses
    for position, message in enumerate(messages):
        where = f"messages[{position}]"
        if message.role in {"system", "developer"}:
            continue
        if message.role == "assistant":
            parts = _model_parts(message, names, needs_signatures, where)
            add_turn(out, "model", "parts", parts)
        elif message.role in {"tool", "function"}:
            add_turn(out, "user", "parts", [_function_response(message, names, where)])
        else:
            add_turn(out, "user", "parts", user_parts(message, where))
    return out


def _model_parts(
    message: ChatMessage, names: dict[str, str], needs_signatures: bool, where: str
) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": message.text()}] if message.text() else []
    signatures = [
        signature
        for block in message.thinking_blocks or []
        if block.get("type") == "thinking"
        and (signature := gemini_signature(str(block.get("signature") or ""))) is not None
    ]
    if signatures:  # a text turn's signature rides on its last text part
        if not parts:
            parts.append({"text": ""})
        parts[-1]["thoughtSignature"] = signatures[-1]
    for index, call in enumerate(message.tool_calls or []):
        function = call.get("function", {})
        full_id = str(call.get("id", ""))
        names[full_id] = function.get("name", "")
        own, signature = split_call_id(full_id)
        body: dict[str, Any] = {
            "name": function.get("name", ""),
            "args": json_object(function.get("arguments") or "{}"),
        }
        if own:
            body["id"] = own
        part: dict[str, Any] = {"functionCall": body}
        if signature:
            part["thoughtSignature"] = signature
        elif index == 0 and needs_signatures:
            part["thoughtSignature"] = SKIP_SIGNATURE
        parts.append(part)
    if not parts:
        raise UnsupportedParameterError(
            "An assistant message with neither content nor tool calls cannot be sent to Gemini",
            param=f"{where}.content",
        )
    return parts


def _function_response(message: ChatMessage, names: dict[str, str], where: str) -> dict[str, Any]:
    if isinstance(message.content, list) and any(isinstance(p, ImagePart) for p in message.content):
        raise UnsupportedParameterError(
            "Gemini takes no images in a tool result", param=f"{where}.content"
        )
    full_id = message.tool_call_id or ""
    name = names.get(full_id, message.name or "")
    if not name:
        raise UnsupportedParameterError(
            "A tool result must answer a tool call of an earlier assistant message for "
            "Gemini (which names the function, not the call)",
            param=f"{where}.tool_call_id",
        )
    key = "error" if (message.model_extra or {}).get("is_error") else "content"
    body: dict[str, Any] = {"name": name, "response": {key: message.text()}}
    own, _ = split_call_id(full_id)
    if own:
        body["id"] = own
    return {"functionResponse": body}


def user_parts(message: ChatMessage, where: str) -> list[dict[str, Any]]:
    if message.content is None or isinstance(message.content, str):
        return [{"text": message.content or ""}]
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(message.content):
        if isinstance(part, TextPart):
            parts.append({"text": part.text})
        elif isinstance(part, ImagePart):
            parts.append(image_part(part.image_url.url, f"{where}.content[{index}].image_url.url"))
    return parts


def image_part(url: str, param: str) -> dict[str, Any]:
    inline = split_data_url(url)
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    if not url.startswith(_FILE_URIS):
        raise UnsupportedParameterError(
            "Gemini cannot fetch an image from this URL: send it as a data URL "
            "(data:image/png;base64,...), a gs:// URI or a Gemini Files API URI",
            param=param,
        )
    data: dict[str, Any] = {"fileUri": url}
    mime, _ = mimetypes.guess_type(url)
    if mime:
        data["mimeType"] = mime
    return {"fileData": data}
