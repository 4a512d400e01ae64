"""Canonical cache keys: equal exactly when the upstream answer cannot differ.

A key covers the model group, every request field that can change the output
(messages, sampling parameters, tools, response format and any provider
specific field passed through) and the caller's scope. Fields that cannot
change the output (``stream``, ``stream_options``, ``user``, the ``cache``
control field) are left out, defaults are filled in and ``null`` equals
absent, so two spellings of one request share a key. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import orjson

from gatehouse.core.principal import Principal
from gatehouse.core.pseudonyms import subject_tag
from gatehouse.core.types import ChatCompletionRequest

Scope = Literal["principal", "team", "org", "global"]

# Transport and bookkeeping fields: they shape how the answer is delivered or
# attributed, never what the model says.
_NOT_OUTPUT = {"model", "stream", "stream_options", "user", "cache", "metadata"}


def canonical_fields(request: ChatCompletionRequest) -> dict[str, Any]:
    """The output-affecting fields of ``request`` as plain data."""
    data = request.model_dump(exclude=_NOT_OUTPUT, exclude_none=True)
    # Two names for one limit: normalise so either spelling hits the same entry.
    data.pop("max_completion_tokens", None)
    data.pop("max_tokens", None)
    limit = request.token_limit()
    if limit is not None:
        data["max_tokens"] = limit
    return data


def fingerprint(request: ChatCompletionRequest) -> bytes:
    """A digest of the output-affecting fields (not the model group or scope)."""
    body = orjson.dumps(canonical_fields(request), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(body, digest_size=16).digest()


def scope_id(principal: Principal | None, scope: Scope) -> str:
    """Who may share entries. A principal without the named attribute falls
    back to its own id, so a missing team never widens sharing."""
    if scope == "global":
        return "*"
    if principal is None:
        return "anonymous"
    value = {"principal": None, "team": principal.team, "org": principal.org}[scope]
    return f"{scope}:{value}" if value is not None else f"principal:{principal.id}"


def cache_key(
    group: str, digest: bytes, scope: str, namespace: str | None = None, kind: str = "exact"
) -> str:
    """The store key for one (kind, namespace, scope, model group, request digest)."""
    parts = "\x00".join((kind, namespace or "", scope, group)).encode() + b"\x00" + digest
    return hashlib.blake2b(parts, digest_size=20).hexdigest()


def is_deterministic(request: ChatCompletionRequest) -> bool:
    """Temperature 0 or a fixed seed: the caller asked for a repeatable answer."""
    return request.temperature == 0 or request.seed is not None


def owner_tags(principal: Principal | None, request: ChatCompletionRequest) -> list[str]:
    """Whose data an entry made for this call holds, as subject tags: the
    caller's user and the end user the request names (``user``), so that a
    per-user deletion finds it (:meth:`CacheStore.purge`)."""
    users = {principal.user if principal is not None else None, request.user}
    return sorted(subject_tag(user) for user in users if user)
