"""Small pieces of wire handling that several translations share. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from gatehouse.core.errors import UpstreamError


def json_object(text: str) -> Any:
    """Tool-call arguments as a value; malformed JSON becomes an empty object, as
    providers that require an object (Anthropic, Gemini) would otherwise refuse the turn."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}


def split_data_url(url: str) -> tuple[str, str] | None:
    """``(media_type, base64_data)`` of a ``data:...;base64,`` URL, else ``None``."""
    if url.startswith("data:") and ";base64," in url:
        media_type, data = url[5:].split(";base64,", 1)
        return media_type or "image/png", data
    return None


# A Gemini thought signature kept in a canonical thinking block is marked, so
# that an Anthropic upstream is never sent a signature it cannot verify (and
# the other way round): see docs/translation.md.
GEMINI_SIGNATURE_PREFIX = "gemini:"


def gemini_signature(signature: str) -> str | None:
    """The Gemini ``thoughtSignature`` a canonical block's signature holds, if it holds one."""
    if signature.startswith(GEMINI_SIGNATURE_PREFIX):
        return signature[len(GEMINI_SIGNATURE_PREFIX) :]
    return None


def add_turn(turns: list[dict[str, Any]], role: str, key: str, items: list[Any]) -> None:
    """Append a turn, merging it into the previous one when the role repeats.

    Anthropic and Gemini both want user and model turns to alternate; ``key`` is
    where a turn keeps its items (``content`` for Anthropic, ``parts`` for Gemini).
    """
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


def token_count(data: Any, field: str) -> int:
    """The count in an upstream's token-count answer (``data[field]``), or an
    :class:`UpstreamError` when it has none."""
    value = data.get(field) if isinstance(data, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise UpstreamError(f"the upstream's token count has no '{field}' number")
