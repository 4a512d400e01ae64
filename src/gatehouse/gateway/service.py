"""The gateway: what the server, the CLI and the RAG engine call to reach models."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gatehouse.catalog import PricingTable
from gatehouse.core.config import Settings
from gatehouse.core.errors import ModelNotFoundError
from gatehouse.core.ids import request_id as new_request_id
from gatehouse.core.principal import LOCAL, Principal
from gatehouse.core.rerank import RerankRequest, RerankResponse
from gatehouse.core.tasks import cancel_and_wait
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelCard,
    StreamOptions,
)
from gatehouse.gateway.cache import CacheStages, build_caches
from gatehouse.gateway.observer import Observer, ObserveStage
from gatehouse.gateway.pipeline import CallContext, ChatStream, Endpoint, Result, Stage, chain
from gatehouse.gateway.routing import Deployment
from gatehouse.gateway.routing.registry import ModelRegistry
from gatehouse.gateway.routing.router import Router
from gatehouse.providers.base import AnyProvider, Readiness

if TYPE_CHECKING:
    from gatehouse.gateway.governance import Governance
    from gatehouse.gateway.trace_context import Tracer
    from gatehouse.gateway.wiring import Wiring

log = logging.getLogger("gatehouse.gateway")

# A reload closes the providers of deployments it removed once their last call
# ends: checked this often, and done after RETIRE_WITHIN seconds whatever holds them.
RETIRE_GRACE = 0.5
RETIRE_WITHIN = 600.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


class Gateway:
    """Runs each call through the pipeline stages to a provider."""

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        started_at: int,
        stages: Sequence[Stage] = (),
        router: Router | None = None,
        governance: Governance | None = None,
        tracer: Tracer | None = None,
        wiring: Wiring | None = None,
    ) -> None:
        """A ``tracer`` wraps the pipeline and its stages (see
        :mod:`gatehouse.gateway.trace_context`); the registry's providers are
        wrapped where they are built (:func:`build_gateway`). ``wiring`` (what
        :func:`build_gateway` built it from) lets :meth:`reconfigure` rebuild it."""
        self.registry = registry
        self.router = router or Router(registry)
        self.governance = governance
        self.stages = tuple(stages)  # what admin work reaches into (privacy: the caches)
        self._started_at = started_at
        self._tracer = tracer
        self._wiring = wiring
        self._retiring: set[asyncio.Task[None]] = set()
        self._retired: list[AnyProvider] = []
        # Each call runs to the end on the router it started on: a reload swaps
        # in a new chain and router, and calls already inside keep the old ones.
        self._handle = chain(stages, functools.partial(self._dispatch, self.router), tracer=tracer)

    async def start(self) -> None:
        """Open what the stages need (databases, outbox, counters); the server calls it."""
        if self.governance is not None:
            await self.governance.start()

    async def stop(self) -> None:
        """Close what :meth:`start` opened, then the upstream connection pools."""
        if self.governance is not None:
            await self.governance.stop()
        for task in list(self._retiring):
            await cancel_and_wait(task)
        for provider in [*self._retired, *self._providers()]:
            await provider.aclose()
        self._retired.clear()

    async def reconfigure(self, settings: Settings) -> None:
        """Serve the routing, prices, limits and guard policies of ``settings`` from
        the next call on (:data:`~gatehouse.gateway.wiring.RELOADABLE_SECTIONS`;
        the other sections are not read).

        Everything new is built before anything changes: a configuration that
        cannot be built raises ``ConfigError`` and the gateway serves on as it
        was. Calls in progress finish on the router they started on; the
        providers of deployments no longer configured are closed once their
        last call ends (or after ``retire_within`` seconds)."""
        if self._wiring is None:
            raise RuntimeError("this gateway was not built by build_gateway: it cannot reload")
        registry = self._wiring.registry(settings)
        stages = self._wiring.stages(settings)
        router = Router(registry, settings.router, observer=self._wiring.observer)
        pricing = PricingTable.from_settings(settings)
        # Nothing below can fail: the swap is all or nothing.
        before = [d for group in self.registry.groups() for d in group.deployments]
        if self.governance is not None:
            self.governance.reconfigure(settings, pricing)
        self.registry, self.router, self.stages = registry, router, tuple(stages)
        self._handle = chain(stages, functools.partial(self._dispatch, router), tracer=self._tracer)
        self._wiring.commit()
        kept = {id(p) for p in self._providers()}
        gone = [d for d in before if id(d.provider) not in kept]
        if gone:
            task = asyncio.create_task(self._retire(gone), name="gatehouse-retire-providers")
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _retire(self, deployments: list[Deployment]) -> None:
        """Close the providers of ``deployments`` once no call holds one of them."""
        providers = list({id(d.provider): d.provider for d in deployments}.values())
        self._retired.extend(providers)
        deadline = time.monotonic() + RETIRE_WITHIN
        # A call that entered the old chain just before the swap takes its
        # deployment a moment later: the first look comes after that moment.
        while time.monotonic() < deadline:
            await asyncio.sleep(RETIRE_GRACE)
            if not any(d.in_flight for d in deployments):
                break
        for provider in providers:
            self._retired.remove(provider)
            try:
                await provider.aclose()
            except Exception as exc:
                log.warning("closing retired deployment %s failed: %s", provider.info.id, exc)

    async def handle(self, ctx: CallContext) -> Result:
        """Run one call; a streamed chat returns an async iterator of chunks."""
        return await self._handle(ctx)

    # -- in-process calls (CLI, RAG): as ``principal``, the local one by default --

    async def chat(
        self,
        request: ChatCompletionRequest,
        *,
        principal: Principal = LOCAL,
        tag: str | None = None,
    ) -> ChatCompletion:
        ctx = _context("chat", request.model_copy(update={"stream": False}), principal, tag)
        result = await self.handle(ctx)
        assert isinstance(result, ChatCompletion)
        return result

    async def chat_stream(
        self,
        request: ChatCompletionRequest,
        *,
        principal: Principal = LOCAL,
        tag: str | None = None,
    ) -> ChatStream:
        ctx = _context("chat", request.model_copy(update={"stream": True}), principal, tag)
        result = await self.handle(ctx)
        assert not isinstance(result, ChatCompletion | EmbeddingResponse | RerankResponse)
        return result

    async def embed(
        self, request: EmbeddingRequest, *, principal: Principal = LOCAL, tag: str | None = None
    ) -> EmbeddingResponse:
        result = await self.handle(_context("embeddings", request, principal, tag))
        assert isinstance(result, EmbeddingResponse)
        return result

    async def rerank(self, ctx: CallContext) -> RerankResponse:
        """Run a rerank call (``ctx.request`` a :class:`RerankRequest`) through the pipeline."""
        result = await self.handle(ctx)
        assert isinstance(result, RerankResponse)
        return result

    # -- models and health --

    def models(self, principal: Principal = LOCAL) -> list[ModelCard]:
        """The models (groups and aliases) ``principal`` may call, by the name it calls them."""
        return [
            self._card(entry.name, entry.info.owned_by)
            for entry in self.registry.entries()
            if principal.may_use(entry.name)
        ]

    def model(self, name: str, principal: Principal = LOCAL) -> ModelCard:
        """One model; one that ``principal`` may not call is not found, as an absent one."""
        if not principal.may_use(name):
            raise ModelNotFoundError(name)
        entry = self.registry.get(name)
        return self._card(entry.name, entry.info.owned_by)

    def model_checks(self) -> list[Check]:
        checks = []
        for provider in self._providers():
            state: Readiness = provider.readiness()
            checks.append(Check(f"model:{provider.info.id}", state.ready, state.detail))
        return checks

    def routing_checks(self) -> list[Check]:
        """One per model group: can the router reach at least one of its deployments
        (a breaker that is not open)?"""
        now = time.monotonic()
        checks = []
        for group in self.registry.groups():
            usable = sum(d.breaker.state(now) != "open" for d in group.deployments)
            total = len(group.deployments)
            detail = (
                f"{usable} of {total} deployments usable"
                if usable
                else f"the breaker of every deployment ({total}) is open"
            )
            checks.append(Check(f"route:{group.name}", usable > 0, detail))
        return checks

    def _providers(self) -> list[AnyProvider]:
        unique: dict[int, AnyProvider] = {}
        for group in self.registry.groups():
            for deployment in group.deployments:
                unique.setdefault(id(deployment.provider), deployment.provider)
        return list(unique.values())

    def _card(self, name: str, owner: str) -> ModelCard:
        return ModelCard(id=name, created=self._started_at, owned_by=owner)

    # -- the terminal call --

    async def _dispatch(self, router: Router, ctx: CallContext) -> Result:
        request = ctx.request
        if isinstance(request, EmbeddingRequest):
            embedded = await router.embed(ctx, request)
            ctx.usage = embedded.usage
            return embedded
        if isinstance(request, RerankRequest):
            reranked = await router.rerank(ctx, request)
            ctx.usage = reranked.usage.as_usage()
            return reranked
        if not request.stream:
            completion = await router.complete(ctx, request)
            ctx.usage = completion.usage
            return completion
        # Always ask the provider for usage, so metering sees it; pass the
        # usage chunk on only when the client asked for it.
        wants_usage = request.include_usage()
        upstream = await router.stream(
            ctx, request.model_copy(update={"stream_options": StreamOptions(include_usage=True)})
        )
        return _observe(ctx, upstream, forward_usage=wants_usage)


async def _observe(
    ctx: CallContext, chunks: AsyncIterator[ChatCompletionChunk], *, forward_usage: bool
) -> ChatStream:
    async for chunk in chunks:
        if chunk.usage is not None:
            ctx.usage = chunk.usage
            if not forward_usage:
                if not chunk.choices:
                    continue
                # Some upstreams put usage on the last chunk with choices: the
                # client that did not ask for usage gets the choices alone.
                chunk = chunk.model_copy(update={"usage": None})
        text = streamed = 0
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                text += len(delta.content)
            if delta.reasoning_content:
                streamed += len(delta.reasoning_content)
            for call in delta.tool_calls or ():
                streamed += len(str(call.get("function", {}).get("arguments") or ""))
        if text and ctx.first_token_at is None:
            ctx.first_token_at = time.monotonic()
        ctx.streamed_chars += text + streamed
        yield chunk


def _context(
    endpoint: Endpoint,
    request: ChatCompletionRequest | EmbeddingRequest,
    principal: Principal,
    tag: str | None,
) -> CallContext:
    return CallContext(
        request_id=new_request_id(),
        endpoint=endpoint,
        request=request,
        principal=principal,
        tag=tag,
    )


def pipeline_stages(
    governance: Governance,
    *,
    observer: Observer | None = None,
    guard: Sequence[Stage] = (),
    caches: CacheStages | None = None,
    bodies: int | None = None,
) -> list[Stage]:
    """Every stage of the pipeline, outermost first: the one place their order is set.

    The stages are built elsewhere (governance, guard, caches); this only puts
    them in order, leaving out what is off. Stages never import each other.
    """
    caches = caches or CacheStages()
    stages: list[Stage | None] = [
        # Observe everything, rejections and cache hits included.
        ObserveStage(observer, governance.pricing, bodies=bodies) if observer is not None else None,
        # Who is calling.
        governance.auth,
        # Meter every call, cache hits and refusals included: a request the
        # guard blocks is in the ledger with its status.
        governance.metering,
        # The guard before the limits: the limits, the caches and the upstream
        # only ever see the protected request, and a blocked one uses no quota.
        *guard,
        # Limit every call, cache hits included (the cache key carries the
        # principal's scope).
        governance.limits,
        # The caches: the exact one first (cheapest), then the semantic one
        # (costs an embedding), then coalescing (only what neither answered).
        caches.exact,
        caches.semantic,
        caches.coalescer,
    ]
    return [stage for stage in stages if stage is not None]


def build_gateway(
    settings: Settings,
    *,
    started_at: int,
    observer: Observer | None = None,
    tracer: Tracer | None = None,
) -> Gateway:
    """Wire the model groups the settings declare into a gateway. Nothing is loaded yet.

    The pipeline's stage order is :func:`pipeline_stages`'s, and only its. A
    ``tracer`` wraps the pipeline, its stages and every deployment's provider.
    """
    from gatehouse.gateway.governance import Governance
    from gatehouse.gateway.wiring import Wiring

    gateway: Gateway | None = None

    def embed_call(request: EmbeddingRequest) -> Awaitable[EmbeddingResponse]:
        # The router serving at the time of the call: a reload replaces it.
        assert gateway is not None
        return gateway.router.embed(_context("embeddings", request, LOCAL, None), request)

    governance = Governance(settings)
    wiring = Wiring(
        settings,
        governance,
        caches=build_caches(
            settings.cache, embed_call, max_ttl=settings.retention.cache_entries_seconds
        ),
        observer=observer,
        tracer=tracer,
        bodies=access_log_bodies(settings),
    )
    registry = wiring.registry(settings)
    gateway = Gateway(
        registry,
        started_at=started_at,
        stages=wiring.stages(settings),
        router=Router(registry, settings.router, observer=observer),
        governance=governance,
        tracer=tracer,
        wiring=wiring,
    )
    wiring.commit()
    return gateway


def access_log_bodies(settings: Settings) -> int | None:
    """How much of each body the access log keeps (redacted); ``None``: no bodies."""
    access = settings.observability.access_log
    return access.body_chars if access.enabled and access.bodies else None
