"""Opt-in body logging: a request's and its answer's text for the access log, redacted.

Off unless ``observability.access_log.bodies`` is set. Before a text leaves
the gateway it passes the guard's detectors: every secret (provider keys,
tokens, JWTs, private keys, assigned passwords; gatehouse's own keys too) and
every piece of personal data they know (emails, phone numbers, cards, IBANs,
SSNs, IP addresses) is replaced by its type in brackets, then the text is
cut at the configured length. Embedding vectors are not logged.
"""

from __future__ import annotations

import re

from gatehouse.core.rerank import RerankRequest
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
)
from gatehouse.gateway.keys import KEY_PREFIX
from gatehouse.guard import SECRET, detect

_OWN_KEY = re.compile(re.escape(KEY_PREFIX) + r"[0-9a-f]{16}_[A-Za-z0-9_-]+")
CUT = "...[cut]"


def redact(text: str) -> str:
    """``text`` with each secret and piece of personal data replaced by ``[TYPE]``."""
    text = _OWN_KEY.sub(f"[{SECRET}]", text)
    parts: list[str] = []
    last = 0
    for entity in detect(text):
        parts.append(text[last : entity.start])
        parts.append(f"[{entity.type}]")
        last = entity.end
    parts.append(text[last:])
    return "".join(parts)


def body(text: str, limit: int) -> str:
    """``text`` redacted, then cut to ``limit`` characters (redacted first: a cut
    could split a secret so that the detectors no longer see it)."""
    clean = redact(text)
    return clean if len(clean) <= limit else clean[: limit - len(CUT)] + CUT


def request_body(
    request: ChatCompletionRequest | EmbeddingRequest | RerankRequest, limit: int
) -> str:
    return body(request.model_dump_json(exclude_none=True), limit)


def answer_body(answer: object, limit: int) -> str | None:
    """A chat answer's JSON, redacted; ``None`` for anything else (embedding vectors)."""
    if isinstance(answer, ChatCompletion):
        return body(answer.model_dump_json(exclude_none=True), limit)
    return None


def streamed_text(chunk: ChatCompletionChunk, parts: list[str]) -> None:
    """Collect a streamed chunk's text into ``parts``."""
    for choice in chunk.choices:
        if choice.delta.content:
            parts.append(choice.delta.content)
