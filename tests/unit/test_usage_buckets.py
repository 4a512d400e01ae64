"""Every provider's usage, as its API reports it, lands in the same five buckets.

The payloads are shaped as each API sends them (field for field, from real
answers with prompt caching and reasoning on); the convention they are brought
to is :mod:`gatehouse.core.usage`'s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    ChunkChoice,
    Delta,
    Usage,
)
from gatehouse.core.usage import TokenCounts, billed_usage
from gatehouse.faces import anthropic as anthropic_face
from gatehouse.faces.responses import response_usage
from gatehouse.gateway import service
from gatehouse.gateway.pipeline import CallContext
from gatehouse.providers.anthropic import translate as anthropic
from gatehouse.providers.gemini import translate as gemini
from gatehouse.providers.openai_compat import translate as openai

# o4-mini through chat completions: a cached prefix, and reasoning inside the completion.
OPENAI_USAGE = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 192,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}

# Claude writing a 5-minute cache entry: input_tokens exclude cache reads and writes.
ANTHROPIC_MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hello!"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 21,
        "cache_creation_input_tokens": 188086,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 188086, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 393,
        "service_tier": "standard",
    },
}

# The same prompt a minute later, streamed: a cache read, and thinking inside output_tokens.
ANTHROPIC_STREAM = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 472,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 188086,
                "output_tokens": 1,
            },
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 350},
    },
    {"type": "message_stop"},
]

# Gemini 2.5 Flash with an explicit cache and thinking on: promptTokenCount
# includes the cached tokens; thoughts are on top of the candidates.
GEMINI_META = {
    "promptTokenCount": 2152,
    "candidatesTokenCount": 129,
    "totalTokenCount": 2561,
    "cachedContentTokenCount": 2017,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 2152}],
    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 2017}],
    "thoughtsTokenCount": 280,
}


def _gemini_response(meta: dict[str, Any], finish: str | None = "STOP") -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": "Hi"}]}}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": meta, "modelVersion": "gemini-2.5-flash"}


def test_openai_usage_is_taken_as_it_is() -> None:
    completion = openai.chat_from_wire(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "o4-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi"},
                    "finish_reason": "stop",
                }
            ],
            "usage": OPENAI_USAGE,
        }
    )
    tokens = TokenCounts.of(completion.usage)
    assert tokens == TokenCounts(prompt=2006, completion=300, cached=1920, reasoning=192)
    assert (tokens.uncached_input, tokens.visible_output) == (86, 108)
    # What the client gets back is the upstream's usage, details and all.
    assert completion.usage.model_dump() == OPENAI_USAGE


def test_openai_stream_usage_chunk() -> None:
    chunk = openai.chunk_from_wire(
        orjson.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "o4-mini",
                "choices": [],
                "usage": {
                    **OPENAI_USAGE,
                    "prompt_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 64},
                },
            }
        )
    )
    assert chunk.usage is not None
    assert TokenCounts.of(chunk.usage) == TokenCounts(
        prompt=2006, completion=300, cached=1920, cache_write=64, reasoning=192
    )


def test_anthropic_input_tokens_exclude_cache_reads_and_writes() -> None:
    completion = anthropic.response_from_wire(ANTHROPIC_MESSAGE, created=1)
    tokens = TokenCounts.of(completion.usage)
    assert tokens == TokenCounts(prompt=21 + 188086, completion=393, cache_write=188086)
    assert tokens.uncached_input == 21
    assert completion.usage.total_tokens == 21 + 188086 + 393
    # The client sees the cache write in OpenAI's own field for it.
    assert completion.usage.model_dump()["prompt_tokens_details"] == {
        "cached_tokens": 0,
        "cache_write_tokens": 188086,
    }


def test_anthropic_stream_usage_from_message_start_and_message_delta() -> None:
    translator = anthropic.StreamTranslator(created=1)
    chunks = [chunk for event in ANTHROPIC_STREAM for chunk in translator.feed(event)]
    usage = chunks[-1].usage
    assert usage is not None
    assert TokenCounts.of(usage) == TokenCounts(prompt=472 + 188086, completion=350, cached=188086)


def test_gemini_thoughts_are_on_top_of_the_candidates() -> None:
    completion = gemini.response_from_wire(_gemini_response(GEMINI_META), "gemini-2.5-flash", 1)
    tokens = TokenCounts.of(completion.usage)
    assert tokens == TokenCounts(prompt=2152, completion=129 + 280, cached=2017, reasoning=280)
    assert (tokens.uncached_input, tokens.visible_output) == (135, 129)
    assert completion.usage.total_tokens == GEMINI_META["totalTokenCount"]


def test_gemini_tool_use_prompt_tokens_count_as_input() -> None:
    meta = {
        "promptTokenCount": 10,
        "candidatesTokenCount": 5,
        "toolUsePromptTokenCount": 40,
        "totalTokenCount": 55,
    }
    completion = gemini.response_from_wire(_gemini_response(meta), "gemini-2.5-flash", 1)
    assert TokenCounts.of(completion.usage) == TokenCounts(prompt=50, completion=5)
    assert completion.usage.total_tokens == 55


def test_gemini_stream_usage_is_the_last_events() -> None:
    translator = gemini.StreamTranslator("gemini-2.5-flash", created=1)
    early = {**GEMINI_META, "candidatesTokenCount": 3, "thoughtsTokenCount": 280}
    translator.feed(_gemini_response(early, finish=None))
    translator.feed(_gemini_response(GEMINI_META))
    usage = translator.close()[-1].usage
    assert usage is not None
    assert TokenCounts.of(usage) == TokenCounts(
        prompt=2152, completion=409, cached=2017, reasoning=280
    )


def test_the_local_model_reports_prompt_and_completion_only() -> None:
    # What the in-process model's provider builds: no cache, no reasoning apart.
    usage = Usage(prompt_tokens=12, completion_tokens=7, total_tokens=19)
    assert TokenCounts.of(usage) == TokenCounts(prompt=12, completion=7)
    assert usage.model_dump() == {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}


def test_billed_usage_leaves_out_what_the_upstream_did_not_report() -> None:
    assert "completion_tokens_details" not in billed_usage(input=3, output=2).model_dump()
    usage = billed_usage(input=10, output=6, cache_read=4, cache_write=1, reasoning=2)
    assert usage.model_dump() == {
        "prompt_tokens": 10,
        "completion_tokens": 6,
        "total_tokens": 16,
        "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 1},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }


def test_buckets_never_go_negative_on_inconsistent_counts() -> None:
    odd = TokenCounts(prompt=5, completion=1, cached=4, cache_write=4, reasoning=3)
    assert (odd.uncached_input, odd.visible_output) == (0, 0)


@pytest.fixture
def cached_completion() -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "c",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi"},
                    "finish_reason": "stop",
                }
            ],
            "usage": billed_usage(
                input=100, output=30, cache_read=60, cache_write=25, reasoning=12
            ).model_dump(),
        }
    )


def test_the_anthropic_face_reports_cache_reads_and_writes_apart(
    cached_completion: ChatCompletion,
) -> None:
    message = anthropic_face.from_openai(cached_completion, "claude")
    assert message["usage"] == {
        "input_tokens": 15,
        "output_tokens": 30,
        "cache_read_input_tokens": 60,
        "cache_creation_input_tokens": 25,
    }


def test_the_responses_face_keeps_every_bucket(cached_completion: ChatCompletion) -> None:
    usage = response_usage(cached_completion.usage)
    assert usage is not None
    assert usage.model_dump() == {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 25},
        "output_tokens": 30,
        "output_tokens_details": {"reasoning_tokens": 12},
        "total_tokens": 130,
    }


async def _streamed(*, forward_usage: bool) -> tuple[list[ChatCompletionChunk], CallContext]:
    """An upstream that puts its usage on the last chunk with choices (as some
    OpenAI-compatible servers do), through the gateway's stream observer."""
    usage = billed_usage(input=9, output=2, cache_read=4, reasoning=1)

    async def upstream() -> AsyncIterator[ChatCompletionChunk]:
        for text, use in (("Hi", None), (" there", usage)):
            yield ChatCompletionChunk(
                id="c",
                created=1,
                model="m",
                choices=[ChunkChoice(delta=Delta(content=text))],
                usage=use,
            )

    request = ChatCompletionRequest(
        model="m", messages=[ChatMessage(role="user", content="hi")], stream=True
    )
    ctx = CallContext(request_id="r", endpoint="chat", request=request)
    chunks = [c async for c in service._observe(ctx, upstream(), forward_usage=forward_usage)]
    return chunks, ctx


async def test_usage_riding_on_a_chunk_with_choices_is_charged_and_kept_from_the_client() -> None:
    chunks, ctx = await _streamed(forward_usage=False)
    assert [c.choices[0].delta.content for c in chunks] == ["Hi", " there"]
    assert all(c.usage is None for c in chunks)
    assert ctx.usage is not None
    assert TokenCounts.of(ctx.usage) == TokenCounts(prompt=9, completion=2, cached=4, reasoning=1)
    asked, _ = await _streamed(forward_usage=True)
    assert asked[-1].usage == ctx.usage
