"""Helpers for the cache and coalescing tests: a counting provider and a call helper."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from gatehouse.core.principal import Principal
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Usage,
)
from gatehouse.gateway import CallContext, Gateway, ModelRegistry, Stage

from .fakes import EchoChat

ALICE = Principal(id="alice", kind="key", team="red")
BOB = Principal(id="bob", kind="key", team="red")


class CountingChat(EchoChat):
    """Echoes, counts upstream calls, reports usage, and can be held at a gate."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.cancelled = 0

    async def _wait(self) -> None:
        self.calls += 1
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        await self._wait()
        return await super().complete(request)

    async def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        await self._wait()
        last: ChatCompletionChunk | None = None
        async for chunk in super().stream(request):
            last = chunk
            yield chunk
        if last is not None and request.include_usage():
            yield ChatCompletionChunk(
                id=last.id,
                created=last.created,
                model=last.model,
                choices=[],
                usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5),
            )


def gateway(provider: CountingChat, stages: Sequence[Stage]) -> Gateway:
    return Gateway(ModelRegistry([provider], {"default": "test/echo"}), started_at=0, stages=stages)


def context(
    body: Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    principal: Principal = ALICE,
) -> CallContext:
    request = ChatCompletionRequest.model_validate(
        {"model": "default", "messages": [{"role": "user", "content": "hello there"}], **body}
    )
    ctx = CallContext(
        request_id="req-test", endpoint="chat", request=request, headers=headers or {}
    )
    ctx.principal = principal
    return ctx


async def collect(result: object) -> list[ChatCompletionChunk]:
    assert isinstance(result, AsyncIterator)
    return [chunk async for chunk in result]
