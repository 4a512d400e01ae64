"""Gemini function calls and thought signatures in canonical form, and back. Pure.

Gemini gives a ``functionCall`` no id (unless it chooses to), and a thinking
model (2.5, 3) attaches an opaque ``thoughtSignature`` to the first function
call of a turn (or to a text part) that it wants back on the next turn; Gemini
3 refuses a turn whose function calls lost it. Clients only reliably send back
a tool call's id, so the id carries both:

- every call gets ``call_`` and 24 hex digits, hashed from the response id,
  the candidate and the call's position: unique within the response, the same
  whether streamed or not;
- Gemini's own id, when it sent one, is appended after ``__id__``, and a
  signature after ``__thought__``, each as its UTF-8 bytes in URL-safe base64,
  so the id stays within Anthropic's ``[A-Za-z0-9_-]``.

On the way back, :func:`split_call_id` recovers both, and the function
response of a tool message finds its function by the call id.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson

ID_MARK = "__id__"
SIGNATURE_MARK = "__thought__"
# Gemini 3 accepts this in place of a signature for calls it did not make
# (another model's, or a client's that lost it), per Google's thought-signature guide.
SKIP_SIGNATURE = "skip_thought_signature_validator"


def synthetic_id(response_id: str, candidate: int, position: int) -> str:
    digest = hashlib.sha256(f"{response_id}:{candidate}:{position}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def call_id(own: str | None, signature: str | None, synthetic: str) -> str:
    """The canonical id of a function call: ``synthetic``, then Gemini's own id and
    the call's signature when it has them."""
    out = synthetic
    if own:
        out += ID_MARK + _encode(own)
    if signature:
        out += SIGNATURE_MARK + _encode(signature)
    return out


def split_call_id(value: str) -> tuple[str | None, str | None]:
    """``(Gemini's own id, the thought signature)`` that a canonical id carries (each
    ``None`` when absent: an id another provider or a client made carries neither)."""
    rest, _, signature = value.partition(SIGNATURE_MARK)
    _, _, own = rest.partition(ID_MARK)
    return _decode(own), _decode(signature)


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(encoded: str) -> str | None:
    if not encoded:
        return None
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def canonical_call(
    part: dict[str, Any], response_id: str, candidate: int, position: int
) -> dict[str, Any]:
    """A ``functionCall`` part as an OpenAI tool call."""
    call = part["functionCall"]
    signature = part.get("thoughtSignature")
    return {
        "id": call_id(
            call.get("id"),
            signature if isinstance(signature, str) else None,
            synthetic_id(response_id, candidate, position),
        ),
        "type": "function",
        "function": {
            "name": call.get("name", ""),
            "arguments": orjson.dumps(call.get("args") or {}).decode(),
        },
    }
