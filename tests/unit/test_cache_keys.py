"""Cache keys differ whenever the output could differ and match whenever it cannot."""

from __future__ import annotations

from typing import Any

import pytest

from gatehouse.core.principal import Principal
from gatehouse.core.types import ChatCompletionRequest
from gatehouse.gateway.cache import cache_key, decide, fingerprint, scope_id

BASE: dict[str, Any] = {
    "model": "default",
    "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    "temperature": 0,
}


def key(body: dict[str, Any], principal: Principal | None = None, scope: Any = "principal") -> str:
    request = ChatCompletionRequest.model_validate(body)
    namespace = request.cache.namespace if request.cache else None
    return cache_key(request.model, fingerprint(request), scope_id(principal, scope), namespace)


@pytest.mark.parametrize(
    "change",
    [
        {"model": "other"},
        {"messages": [{"role": "user", "content": "hi"}]},
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "Hi"},
            ]
        },
        {"temperature": 0.5},
        {"seed": 7},
        {"top_p": 0.5},
        {"max_tokens": 10},
        {"stop": ["\n"]},
        {"n": 2},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"tool_choice": "none"},
        {"response_format": {"type": "json_object"}},
        {"frequency_penalty": 0.5},  # unknown to gatehouse, passed upstream: part of the key
        {"logit_bias": {"50256": -100}},
        {"cache": {"namespace": "tenant-a"}},
    ],
)
def test_keys_differ_when_the_output_can_differ(change: dict[str, Any]) -> None:
    assert key({**BASE, **change}) != key(BASE)


@pytest.mark.parametrize(
    "change",
    [
        {"stream": True},
        {"stream": True, "stream_options": {"include_usage": True}},
        {"user": "someone"},
        {"metadata": {"trace": "x"}},
        {"n": 1},  # the default, spelled out
        {"seed": None},  # null is absent
        {"cache": {"ttl": 5}},
        {"cache": {"bypass": False}},
    ],
)
def test_keys_match_when_the_output_cannot_differ(change: dict[str, Any]) -> None:
    assert key({**BASE, **change}) == key(BASE)


def test_field_order_and_limit_spelling_do_not_matter() -> None:
    reordered = {"temperature": 0, "messages": BASE["messages"], "model": "default"}
    assert key(reordered) == key(BASE)
    assert key({**BASE, "max_tokens": 9}) == key({**BASE, "max_completion_tokens": 9})


def test_scope_separates_callers() -> None:
    alice = Principal(id="alice", kind="key", team="red", org="acme")
    bob = Principal(id="bob", kind="key", team="red", org="acme")
    carol = Principal(id="carol", kind="key", team="blue", org="acme")
    loner = Principal(id="dave", kind="key")
    assert key(BASE, alice) != key(BASE, bob)
    assert key(BASE, alice, "team") == key(BASE, bob, "team")
    assert key(BASE, alice, "team") != key(BASE, carol, "team")
    assert key(BASE, alice, "org") == key(BASE, carol, "org")
    # Without a team, team scope falls back to the caller alone, never to everyone.
    assert key(BASE, loner, "team") != key(BASE, alice, "team")
    assert key(BASE, loner, "global") == key(BASE, alice, "global")


def _decide(body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[bool, bool]:
    request = ChatCompletionRequest.model_validate({**BASE, **body})
    decision = decide(request, headers or {}, default_ttl=60, only_deterministic=True)
    return decision.lookup, decision.store


def test_decide_follows_determinism_body_field_and_headers() -> None:
    assert _decide({}) == (True, True)
    assert _decide({"temperature": 0.7}) == (False, False)
    assert _decide({"temperature": 0.7, "seed": 1}) == (True, True)
    assert _decide({"temperature": None}) == (False, False)
    assert _decide({"cache": {"bypass": True}}) == (False, False)
    assert _decide({}, {"cache-control": "no-cache"}) == (False, True)
    assert _decide({}, {"cache-control": "max-age=0, No-Store"}) == (False, False)


def test_decide_can_cache_everything_when_configured() -> None:
    request = ChatCompletionRequest.model_validate({**BASE, "temperature": 1})
    decision = decide(request, {}, default_ttl=60, only_deterministic=False)
    assert (decision.lookup, decision.store) == (True, True)


def test_body_ttl_and_namespace_override_defaults() -> None:
    request = ChatCompletionRequest.model_validate({**BASE, "cache": {"ttl": 5, "namespace": "a"}})
    decision = decide(request, {}, default_ttl=60, only_deterministic=True)
    assert (decision.ttl, decision.namespace) == (5, "a")
