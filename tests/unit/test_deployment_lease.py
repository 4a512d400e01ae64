"""A deployment's one in-flight count: taken by a lease, given back however the call ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gatehouse.core.config import RouterConfig
from gatehouse.core.errors import InvalidRequestError, UpstreamError
from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from gatehouse.gateway import CallContext, ModelRegistry
from gatehouse.gateway.routing import Deployment
from gatehouse.gateway.routing.router import Router

from .fakes import EchoChat


class Held(EchoChat):
    """Echoes, but each call waits at ``gate`` (once open it passes straight through)."""

    def __init__(self) -> None:
        super().__init__("test/held")
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        self.entered.set()
        await self.gate.wait()
        return await super().complete(request)

    async def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        self.entered.set()
        await self.gate.wait()
        async for chunk in super().stream(request):
            yield chunk


def setup(provider: EchoChat) -> tuple[Router, Deployment]:
    registry = ModelRegistry([provider])
    router = Router(registry, RouterConfig(num_retries=0))
    (deployment,) = registry.group(provider.info.id).deployments
    return router, deployment


def chat(model: str, *, stream: bool = False) -> tuple[CallContext, ChatCompletionRequest]:
    request = ChatCompletionRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": "one two three"}]}
        | ({"stream": True} if stream else {})
    )
    return CallContext(request_id="r", endpoint="chat", request=request), request


async def test_success_holds_one_slot_then_gives_it_back() -> None:
    provider = Held()
    router, deployment = setup(provider)
    ctx, request = chat("test/held")
    call = asyncio.create_task(router.complete(ctx, request))
    await provider.entered.wait()
    assert deployment.in_flight == 1
    provider.gate.set()
    await call
    assert deployment.in_flight == 0
    assert deployment.stats.hold is not None  # the hold time fed the limit


@pytest.mark.parametrize(
    "error", [UpstreamError("boom"), InvalidRequestError("bad"), RuntimeError("bug")]
)
async def test_a_failure_gives_the_slot_back(error: Exception) -> None:
    provider = EchoChat()
    provider.fail_with = error
    router, deployment = setup(provider)
    ctx, request = chat("test/echo")
    with pytest.raises(type(error)):
        await router.complete(ctx, request)
    assert deployment.in_flight == 0


async def test_a_cancelled_call_gives_the_slot_back() -> None:
    provider = Held()
    router, deployment = setup(provider)
    ctx, request = chat("test/held")
    call = asyncio.create_task(router.complete(ctx, request))
    await provider.entered.wait()
    assert deployment.in_flight == 1
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert deployment.in_flight == 0
    assert deployment.stats.hold is None  # a cancelled call says nothing of the deployment


async def test_a_stream_holds_its_slot_until_closed_early() -> None:
    provider = EchoChat()
    router, deployment = setup(provider)
    ctx, request = chat("test/echo", stream=True)
    stream = await router.stream(ctx, request)
    assert deployment.in_flight == 1  # opened: the first chunk is in hand
    await anext(stream)
    assert deployment.in_flight == 1
    await stream.aclose()  # type: ignore[attr-defined]  # the client went away
    assert deployment.in_flight == 0


async def test_a_stream_read_to_the_end_or_cut_gives_the_slot_back() -> None:
    provider = EchoChat()
    router, deployment = setup(provider)
    ctx, request = chat("test/echo", stream=True)
    async for _ in await router.stream(ctx, request):
        pass
    assert deployment.in_flight == 0

    provider.fail_mid_stream = UpstreamError("cut")
    stream = await router.stream(ctx, request)
    with pytest.raises(UpstreamError):
        async for _ in stream:
            pass
    assert deployment.in_flight == 0


async def test_a_lease_is_released_once() -> None:
    _, deployment = setup(EchoChat())
    lease = await deployment.lease(lambda: 0.0)
    assert deployment.in_flight == 1
    lease.release(None)
    lease.release(None)
    assert deployment.in_flight == 0
