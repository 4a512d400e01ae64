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
from gatehouse.prompts._flow import ModelAnswer, ModelCall, Stepper

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
    stepper = Stepper(flow)
    call = stepper.step()
    while call is not None:
        if calls is not None:
            calls.append(call)
        reply = answer(call)
        call = stepper.step(failure=reply) if isinstance(reply, Exception) else stepper.step(reply)
    return stepper.result


def chat_texts(calls: list[ModelCall]) -> list[ChatCompletionRequest]:
    return [c for c in calls if isinstance(c, ChatCompletionRequest)]


def embed_calls(calls: list[ModelCall]) -> list[EmbeddingRequest]:
    return [c for c in calls if isinstance(c, EmbeddingRequest)]
