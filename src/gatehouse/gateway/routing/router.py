"""The router: a model group to one deployment call, with retries and fallbacks.

For each call: pick a deployment with the group's strategy among those whose
breaker and Retry-After allow it (when none does, wait for the first to come
back, up to ``router.max_retry_after``, else answer 429/503 with Retry-After),
call it, and on a retryable failure (connect error, timeout, 408/409/429/5xx)
try again after an exponential backoff with full jitter, preferring
deployments that have not failed this request. When
the group is exhausted, its fallback groups are tried in order; a prompt too
long for the group goes to its context-window fallbacks and a content-policy
refusal to its content-policy fallbacks. A stream is retried only until its
first chunk: after that, bytes have reached the client.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar, cast

from gatehouse.catalog import prompt_tokens
from gatehouse.core.config import RouterConfig
from gatehouse.core.errors import (
    ContentPolicyError,
    ContextLengthExceededError,
    GatehouseError,
    ServiceUnavailableError,
    error_type,
)
from gatehouse.core.rerank import RerankRequest, RerankResponse
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)
from gatehouse.gateway.observer import NullObserver, Observer
from gatehouse.gateway.pipeline import CallContext
from gatehouse.gateway.routing.deployment import Deployment, Lease
from gatehouse.gateway.routing.hashring import prefix_key
from gatehouse.gateway.routing.registry import ModelGroup, ModelRegistry
from gatehouse.gateway.routing.strategies import choose
from gatehouse.providers.base import (
    ChatProvider,
    EmbeddingProvider,
    RerankProvider,
    ResponsesProvider,
)

# How often to look again while the only way back is a breaker's probe in flight,
# which ends when its call does.
PROBE_POLL = 0.05

T = TypeVar("T")
Answer = TypeVar("Answer", ChatCompletion, EmbeddingResponse, RerankResponse)
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
# An opened stream: where it runs, its first chunk, the rest, and its slot there.
Opened = tuple[Deployment, ChatCompletionChunk, AsyncIterator[ChatCompletionChunk], Lease]


class Router:
    def __init__(
        self,
        registry: ModelRegistry,
        config: RouterConfig | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.registry = registry
        self.observer: Observer = observer or NullObserver()
        self._config = config or RouterConfig()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def complete(self, ctx: CallContext, request: ChatCompletionRequest) -> ChatCompletion:
        async def call(deployment: Deployment, lease: Lease) -> ChatCompletion:
            # registry.chat() checked the group serves chat (a runtime Protocol
            # isinstance here would cost microseconds per call).
            provider = cast(ChatProvider, deployment.provider)
            native = ctx.native
            if native is not None:
                if native.applies(ctx.request, provider):
                    # The deployment speaks Responses: it gets the request as it came.
                    responder = cast(ResponsesProvider, provider)
                    return await self._measured(deployment, native.complete(responder))
                native.check_chat()
            return await self._measured(deployment, provider.complete(request))

        return await self._with_fallbacks(ctx, self.registry.chat(request.model), call)

    async def embed(self, ctx: CallContext, request: EmbeddingRequest) -> EmbeddingResponse:
        async def call(deployment: Deployment, lease: Lease) -> EmbeddingResponse:
            provider = cast(EmbeddingProvider, deployment.provider)
            return await self._measured(deployment, provider.embed(request))

        return await self._with_fallbacks(ctx, self.registry.embedding(request.model), call)

    async def rerank(self, ctx: CallContext, request: RerankRequest) -> RerankResponse:
        async def call(deployment: Deployment, lease: Lease) -> RerankResponse:
            provider = cast(RerankProvider, deployment.provider)
            return await self._measured(deployment, provider.rerank(request))

        return await self._with_fallbacks(ctx, self.registry.rerank(request.model), call)

    async def _measured(self, deployment: Deployment, call: Awaitable[Answer]) -> Answer:
        """Await a whole (non-streamed) call, recording its latency and tokens."""
        started = self._clock()
        result = await call
        deployment.stats.observe_latency(self._clock() - started)
        _count_tokens(deployment, self._clock(), result.usage.total_tokens)
        return result

    async def stream(
        self, ctx: CallContext, request: ChatCompletionRequest
    ) -> AsyncIterator[ChatCompletionChunk]:
        """Open a stream (retrying until its first chunk arrives) and return it."""

        async def call(deployment: Deployment, lease: Lease) -> Opened:
            # registry.chat() checked the group serves chat (a runtime Protocol
            # isinstance here would cost microseconds per call).
            provider = cast(ChatProvider, deployment.provider)
            started = self._clock()
            native = ctx.native
            if native is not None and native.applies(ctx.request, provider):
                chunks = native.stream(cast(ResponsesProvider, provider))
            else:
                if native is not None:
                    native.check_chat()
                chunks = provider.stream(request)
            try:
                first = await anext(chunks)
            except StopAsyncIteration:
                raise ServiceUnavailableError(
                    f"Deployment {deployment.id} returned an empty stream"
                ) from None
            except BaseException:
                await _close(chunks)
                raise
            deployment.stats.observe_ttft(self._clock() - started)
            lease.keep()  # the stream holds the slot until it ends: _relay releases it
            return deployment, first, chunks, lease

        group = self.registry.chat(request.model)
        started = self._clock()
        deployment, first, rest, lease = await self._with_fallbacks(ctx, group, call)
        return self._relay(ctx, deployment, first, rest, started, lease)

    async def _relay(
        self,
        ctx: CallContext,
        deployment: Deployment,
        first: ChatCompletionChunk,
        rest: AsyncIterator[ChatCompletionChunk],
        started: float,
        lease: Lease,
    ) -> AsyncIterator[ChatCompletionChunk]:
        """Pass the stream on; a failure now is the deployment's, but is not retried.

        The stream holds the deployment's slot (``lease``) until it ends, however
        it ends: finished, failed, or closed early by a client that went away.
        Its time after the first chunk counts as upstream time too.
        """
        relayed = self._clock()
        try:
            yield first
            async for chunk in rest:
                if chunk.usage is not None:
                    _count_tokens(deployment, self._clock(), chunk.usage.total_tokens)
                yield chunk
        except GatehouseError as exc:
            self.observer.upstream_error(deployment.group, deployment.id, error_type(exc))
            if exc.retryable or exc.http_status >= 500:
                deployment.breaker.on_failure(self._clock())
                deployment.failures += 1
            raise
        finally:
            now = self._clock()
            ctx.upstream_seconds = (ctx.upstream_seconds or 0.0) + (now - relayed)
            lease.release(now - started)
            # Closing the provider's iterator closes its upstream connection:
            # a client that went away cancels the upstream call.
            await _close(rest)

    # -- the attempt loop ----------------------------------------------------

    async def _with_fallbacks(
        self,
        ctx: CallContext,
        group: ModelGroup,
        call: Callable[[Deployment, Lease], Awaitable[T]],
    ) -> T:
        queue = [group]
        tried: set[str] = set()
        last: GatehouseError | None = None
        previous: ModelGroup | None = None
        while queue:
            current = queue.pop(0)
            if current.name in tried:
                continue
            tried.add(current.name)
            if previous is not None:  # reported by the group given up on
                ctx.fallbacks += 1
                self.observer.fallback(previous.name)
            previous = current
            if current.context_window_fallbacks and _too_long(ctx, current):
                last = ContextLengthExceededError(
                    f"The request is longer than the context window of '{current.name}'.",
                    param="messages",
                )
                queue[:0] = self._groups(current.context_window_fallbacks)
                continue
            try:
                return await self._attempts(ctx, current, call)
            except ContextLengthExceededError as exc:
                last, more = exc, current.context_window_fallbacks
            except ContentPolicyError as exc:
                last, more = exc, current.content_policy_fallbacks
            except GatehouseError as exc:
                if not exc.retryable and exc.http_status < 500:
                    raise  # the client's mistake: another group would refuse it too
                last, more = exc, current.fallbacks
            if not more:
                if not queue:
                    raise last
                continue
            queue[:0] = self._groups(more)
        assert last is not None
        raise last

    async def _attempts(
        self,
        ctx: CallContext,
        group: ModelGroup,
        call: Callable[[Deployment, Lease], Awaitable[T]],
    ) -> T:
        failed: set[str] = set()
        last: GatehouseError | None = None
        attempts = 1 + group.num_retries
        deadline: float | None = None  # set when the group is first found cooling down
        for attempt in range(attempts):
            if attempt:
                ctx.retries += 1
                self.observer.retry(group.name)
            now = self._clock()
            candidates = _available(group, now)
            if not candidates:
                if deadline is None:
                    deadline = now + self._config.max_retry_after
                candidates, now = await self._wait_for_one(group, deadline, last)
            fresh = [d for d in candidates if d.id not in failed] or candidates
            fresh = [d for d in fresh if d.capacity.has_capacity()] or fresh
            deployment = choose(
                group.strategy,
                fresh,
                now=now,
                rng=self._rng,
                streaming=ctx.stream,
                affinity_key=_affinity_key(ctx) if group.strategy == "prefix_affinity" else None,
                ring=group.ring,
                load_factor=self._config.affinity_load_factor,
            )
            ctx.group = group.name
            ctx.deployment = deployment.id
            try:
                lease = await deployment.lease(self._clock)
            except GatehouseError as exc:
                # Full or timed out here, not at the upstream: no mark on its health.
                failed.add(deployment.id)
                last = exc
                continue
            if lease.waited:
                self.observer.admission_wait(deployment.id, lease.waited)
            deployment.breaker.on_attempt(now)
            deployment.attempts += 1
            deployment.stats.count(now, requests=1)
            called = self._clock()
            try:
                # The lease gives the slot back when the attempt ends, however
                # it ends, unless the call kept it (an open stream).
                async with lease:
                    try:
                        result = await call(deployment, lease)
                    finally:
                        # Upstream time: the call itself, not the admission
                        # queue before it nor the backoff after a failure.
                        elapsed = self._clock() - called
                        ctx.upstream_seconds = (ctx.upstream_seconds or 0.0) + elapsed
            except GatehouseError as exc:
                self.observer.upstream_error(group.name, deployment.id, error_type(exc))
                if not exc.retryable:
                    deployment.breaker.on_neutral()
                    self.observer.attempt(deployment.id, "client_error")
                    raise
                self.observer.attempt(deployment.id, "retryable_error")
                deployment.failures += 1
                deployment.breaker.on_failure(self._clock())
                if exc.retry_after:
                    deployment.cooldown_until = self._clock() + exc.retry_after
                failed.add(deployment.id)
                last = exc
                if attempt + 1 < attempts:
                    await self._sleep(self._backoff(attempt))
                continue
            except BaseException as exc:
                deployment.breaker.on_neutral()
                if isinstance(exc, Exception):  # not a cancellation
                    self.observer.upstream_error(group.name, deployment.id, error_type(exc))
                raise
            deployment.breaker.on_success()
            self.observer.attempt(deployment.id, "ok")
            return result
        assert last is not None
        raise last

    async def _wait_for_one(
        self, group: ModelGroup, deadline: float, last: GatehouseError | None
    ) -> tuple[list[Deployment], float]:
        """Every deployment of ``group`` is cooling down (Retry-After, open breaker, a
        probe in flight): wait for the first to come back, if it does by ``deadline``.

        Returns a non-empty candidate list and the time, or raises a retryable 429
        or 503 that carries ``Retry-After``: an empty list never reaches a strategy.
        Another request's 429 can push a cooldown further while this one sleeps,
        and a probe ends when its call does, so availability is checked again
        after every sleep.
        """
        while True:
            now = self._clock()
            candidates = _available(group, now)
            if candidates:
                return candidates, now
            # A deployment whose probe is in flight says "now": look again shortly.
            back = max(min(d.available_at(now) for d in group.deployments), now + PROBE_POLL)
            if back > deadline:
                raise self._unavailable(group, back - now, last)
            await self._sleep(back - now)

    def _unavailable(
        self, group: ModelGroup, wait: float, last: GatehouseError | None
    ) -> GatehouseError:
        """The error for a group that will not be back soon enough, with its Retry-After."""
        retry_after = max(wait, 1.0)
        if last is not None and last.http_status == 429:
            # The upstream's own rate limit, told how long this group needs.
            last.retry_after = max(retry_after, last.retry_after or 0.0)
            return last
        error = ServiceUnavailableError(
            f"No deployment of '{group.name}' is available; retry later.",
            retry_after=retry_after,
        )
        error.retryable = True
        return error

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^attempt)]."""
        ceiling = min(self._config.backoff_max, self._config.backoff_base * 2**attempt)
        return self._rng.uniform(0, ceiling)

    def _groups(self, names: list[str]) -> list[ModelGroup]:
        return [self.registry.group(name) for name in names]


def _available(group: ModelGroup, now: float) -> list[Deployment]:
    return [d for d in group.deployments if d.can_try(now)]


def _too_long(ctx: CallContext, group: ModelGroup) -> bool:
    window = group.context_window
    request = ctx.request
    if window is None or not isinstance(request, ChatCompletionRequest):
        return False
    return prompt_tokens(request) + (request.token_limit() or 0) > window


def _affinity_key(ctx: CallContext) -> str:
    request = ctx.request
    if not isinstance(request, ChatCompletionRequest):
        return request.model
    # The conversation's opening (system prompt and first user turn) stays the
    # same as it grows, so all its turns land where its prefix is cached.
    opening: list[str] = []
    for message in request.messages:
        opening.append(f"{message.role}:{message.text()}")
        if message.role == "user":
            break
    return prefix_key(request.model, opening)


def _count_tokens(deployment: Deployment, now: float, tokens: int) -> None:
    deployment.stats.count(now, tokens=tokens)


async def _close(iterator: AsyncIterator[ChatCompletionChunk]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()
