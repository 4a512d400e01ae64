"""The semantic cache with a deterministic bag-of-words embedder."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gatehouse.core.errors import ServiceUnavailableError
from gatehouse.core.types import ChatCompletion
from gatehouse.gateway import Gateway
from gatehouse.gateway.cache import MemoryStore, SemanticCache
from gatehouse.gateway.cache.semantic import SemanticIndex, unit

from .cache_fakes import BOB, CountingChat, context, gateway

VOCAB = ["capital", "france", "paris", "germany", "what", "is", "the", "of", "tell", "me"]


async def bag_of_words(text: str) -> list[float]:
    words = text.lower().replace("?", "").split()
    return [float(words.count(w)) for w in VOCAB]


def ask(question: str, system: str = "be brief", history: list[Any] | None = None) -> Any:
    messages = [
        {"role": "system", "content": system},
        *(history or []),
        {"role": "user", "content": question},
    ]
    return {"temperature": 0, "messages": messages}


@pytest.fixture
def upstream() -> CountingChat:
    return CountingChat()


def semantic(upstream: CountingChat, threshold: float = 0.9, embed: Any = bag_of_words) -> Gateway:
    store = MemoryStore(max_entries=100, max_bytes=1_000_000)
    stage = SemanticCache(
        store, embed, groups={"default"}, threshold=threshold, max_entries=100, ttl=60
    )
    return gateway(upstream, [stage])


async def test_a_paraphrase_hits(upstream: CountingChat) -> None:
    gw = semantic(upstream)
    await gw.handle(context(ask("what is the capital of france")))
    ctx = context(ask("The capital of France is what?"))
    result = await gw.handle(ctx)
    assert ctx.cache == "hit"
    assert upstream.calls == 1
    assert float(ctx.response_headers["x-gatehouse-cache-similarity"]) >= 0.9
    assert isinstance(result, ChatCompletion)
    assert result.choices[0].message.content == "what is the capital of france"


async def test_a_different_question_misses(upstream: CountingChat) -> None:
    gw = semantic(upstream)
    await gw.handle(context(ask("what is the capital of france")))
    ctx = context(ask("what is the capital of germany"))
    await gw.handle(ctx)
    assert ctx.cache == "miss"
    assert upstream.calls == 2


@pytest.mark.parametrize(
    "other",
    [
        ask("what is the capital of france", system="answer in french"),
        ask(
            "what is the capital of france",
            history=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}],
        ),
        {**ask("what is the capital of france"), "max_tokens": 3},
    ],
    ids=["system prompt", "earlier turns", "parameters"],
)
async def test_different_conversations_never_collide(upstream: CountingChat, other: Any) -> None:
    gw = semantic(upstream, threshold=0.5)
    await gw.handle(context(ask("what is the capital of france")))
    ctx = context(other)
    await gw.handle(ctx)
    assert ctx.cache == "miss"
    assert upstream.calls == 2


async def test_other_callers_and_other_groups_are_apart(upstream: CountingChat) -> None:
    gw = semantic(upstream)
    await gw.handle(context(ask("what is the capital of france")))
    ctx = context(ask("what is the capital of france"), principal=BOB)
    await gw.handle(ctx)
    assert ctx.cache == "miss"
    store = MemoryStore(max_entries=10, max_bytes=100_000)
    off = gateway(
        upstream,
        [SemanticCache(store, bag_of_words, groups={"x"}, threshold=0.9, max_entries=9, ttl=9)],
    )
    plain = context(ask("what is the capital of france"))
    await off.handle(plain)
    assert plain.cache is None  # the group did not opt in


async def test_tool_turns_and_embedding_failures_pass_through(upstream: CountingChat) -> None:
    async def broken(text: str) -> list[float]:
        raise ServiceUnavailableError("embedding model not loaded")

    gw = semantic(upstream, embed=broken)
    ctx = context(ask("what is the capital of france"))
    assert isinstance(await gw.handle(ctx), ChatCompletion)
    assert ctx.cache == "bypass"
    body = ask("x")
    body["messages"][-1] = {"role": "tool", "content": "42", "tool_call_id": "t1"}
    tool = context(body)
    await semantic(upstream).handle(tool)
    assert tool.cache == "bypass"


def test_index_is_bounded_and_finds_the_nearest() -> None:
    index = SemanticIndex(max_entries=2)
    index.add("p", "a", unit([1.0, 0.0]))
    index.add("p", "b", unit([0.0, 1.0]))
    index.add("q", "c", unit([1.0, 1.0]))
    assert len(index) == 2
    found = index.nearest("p", unit([0.1, 1.0]))
    assert found is not None
    assert found[0] == "b"
    assert math.isclose(found[1], 1 / math.sqrt(1.01), rel_tol=1e-5)
    assert index.nearest("missing", unit([1.0, 0.0])) is None
