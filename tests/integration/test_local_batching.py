"""Continuous batching of the real local chat model: shared decode steps, same answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gatehouse.core.config import LocalChatConfig
from gatehouse.core.types import ChatCompletionRequest
from gatehouse.providers.local.chat import LlamaChatProvider

QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about rain.",
    "Count to five.",
    "Describe a cat in one sentence.",
]


def request(content: str, **fields: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {
            "model": "local/smollm2",
            "temperature": 0,
            "max_tokens": 24,
            "messages": [{"role": "user", "content": content}],
            **fields,
        }
    )


@pytest.fixture
async def provider() -> AsyncIterator[LlamaChatProvider]:
    chat = LlamaChatProvider(LocalChatConfig(max_sequences=4))
    yield chat
    await chat.aclose()


async def answer(chat: LlamaChatProvider, content: str) -> str:
    completion = await chat.complete(request(content))
    return completion.choices[0].message.content or ""


async def test_concurrent_requests_share_decode_steps_and_answer_as_they_would_alone(
    provider: LlamaChatProvider,
) -> None:
    alone = [await answer(provider, q) for q in QUESTIONS]
    together = await asyncio.gather(*(answer(provider, q) for q in QUESTIONS))
    assert list(together) == alone  # greedy text does not depend on batching
    sequences = provider._sequences
    assert sequences is not None
    assert sequences.largest_batch > 1  # they were decoded together


async def test_a_client_that_leaves_mid_stream_frees_its_slot(
    provider: LlamaChatProvider,
) -> None:
    async def leave_after_the_first_words() -> None:
        stream = provider.stream(request("Write a long story about the sea.", max_tokens=200))
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        await stream.aclose()

    for _ in range(6):  # more than the four slots: each must be given back
        await asyncio.wait_for(leave_after_the_first_words(), 60)
    # Every slot is free again: four requests at once still complete.
    together = await asyncio.wait_for(asyncio.gather(*(answer(provider, q) for q in QUESTIONS)), 60)
    assert all(together)
