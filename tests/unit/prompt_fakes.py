"""Scripted model answers for prompt-pattern tests: no server, no model."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from gatehouse.core.types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)
from gatehouse.prompts import Flow
from gatehouse.prompts._flow import ModelAnswer, ModelCall

T = TypeVar("T")


def completion(text: str, tokens: int = 10) -> ChatCompletion:
    return ChatCompletion(
        id="c",
        created=0,
        model="m",
        choices=[Choice(message=AssistantMessage(content=text), finish_reason="stop")],
        usage=Usage(prompt_tokens=tokens - 1, completion_tokens=1, total_tokens=tokens),
    )


def embeddings(vectors: list[list[float]]) -> EmbeddingResponse:
    return EmbeddingResponse(
        data=[Embedding(index=i, embedding=v) for i, v in enumerate(vectors)],
        model="e",
        usage=Usage(prompt_tokens=1, total_tokens=1),
    )


def drive(
    flow: Flow[T],
    answer: Callable[[ModelCall], ModelAnswer | Exception],
    calls: list[ModelCall] | None = None,
) -> T:
    """Run ``flow``, answering each call with ``answer`` (an exception is thrown in)."""
    sent: ModelAnswer | Exception | None = None
    while True:
        try:
            if isinstance(sent, Exception):
                call = flow.throw(sent)
            elif sent is None:
                call = next(flow)
            else:
                call = flow.send(sent)
        except StopIteration as stop:
            result: T = stop.value
            return result
        if calls is not None:
            calls.append(call)
        sent = answer(call)


def chat_texts(calls: list[ModelCall]) -> list[ChatCompletionRequest]:
    return [c for c in calls if isinstance(c, ChatCompletionRequest)]


def embed_calls(calls: list[ModelCall]) -> list[EmbeddingRequest]:
    return [c for c in calls if isinstance(c, EmbeddingRequest)]
