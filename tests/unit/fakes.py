"""In-process providers for tests of the HTTP layer that need no real model."""

from __future__ import annotations

from collections.abc import AsyncIterator

from gatehouse.core.errors import GatehouseError
from gatehouse.core.types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)
from gatehouse.providers.base import ModelInfo, Readiness


class EchoChat:
    """Answers with the last user message; can be told to fail before or mid-stream."""

    def __init__(self, model_id: str = "test/echo") -> None:
        self.info = ModelInfo(id=model_id, kind="chat", owned_by="test", context_window=100)
        self.fail_with: BaseException | None = None
        self.fail_mid_stream: GatehouseError | None = None

    def readiness(self) -> Readiness:
        return Readiness(True, "fake")

    async def aclose(self) -> None:
        pass

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        if self.fail_with is not None:
            raise self.fail_with
        text = request.messages[-1].text()
        return ChatCompletion(
            id="chatcmpl-test",
            created=0,
            model=self.info.id,
            choices=[Choice(message=AssistantMessage(content=text), finish_reason="stop")],
            usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
        )

    async def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        if self.fail_with is not None:
            raise self.fail_with
        for word in ["", *request.messages[-1].text().split()]:
            yield ChatCompletionChunk(
                id="chatcmpl-test",
                created=0,
                model=self.info.id,
                choices=[ChunkChoice(delta=Delta(content=word))],
            )
            if self.fail_mid_stream is not None:
                raise self.fail_mid_stream
        yield ChatCompletionChunk(
            id="chatcmpl-test",
            created=0,
            model=self.info.id,
            choices=[ChunkChoice(delta=Delta(), finish_reason="stop")],
        )
        if request.include_usage():
            words = len(request.messages[-1].text().split())
            yield ChatCompletionChunk(
                id="chatcmpl-test",
                created=0,
                model=self.info.id,
                choices=[],
                usage=Usage(prompt_tokens=words, completion_tokens=words, total_tokens=2 * words),
            )


class RequestKeepingChat(EchoChat):
    """Echoes like EchoChat and keeps every request it was sent, whole."""

    def __init__(self, model_id: str = "test/rec-chat") -> None:
        super().__init__(model_id)
        self.seen: list[ChatCompletionRequest] = []

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        self.seen.append(request)
        return await super().complete(request)

    async def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        self.seen.append(request)
        async for chunk in super().stream(request):
            yield chunk


class RecordingChat(EchoChat):
    """An echo that keeps the text of every request it answered (whole answers only)."""

    def __init__(self, model_id: str = "test/rec-chat") -> None:
        super().__init__(model_id)
        self.seen: list[str] = []

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        self.seen.append("\n".join(m.text() for m in request.messages))
        return await super().complete(request)


class ConstantEmbeddings:
    def __init__(self, model_id: str = "test/embed") -> None:
        self.info = ModelInfo(
            id=model_id, kind="embedding", owned_by="test", context_window=10, dimensions=2
        )

    def readiness(self) -> Readiness:
        return Readiness(True, "fake")

    async def aclose(self) -> None:
        pass

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        data = [Embedding(index=i, embedding=[1.0, 0.0]) for i, _ in enumerate(request.texts())]
        return EmbeddingResponse(
            data=data, model=self.info.id, usage=Usage(prompt_tokens=1, total_tokens=1)
        )
