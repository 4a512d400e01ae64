"""The gateway: what the server, the CLI and the RAG engine call to reach models."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gatehouse.core.config import ModelGroupConfig, RouterConfig, Settings
from gatehouse.core.errors import MissingExtraError
from gatehouse.core.extras import has_extra
from gatehouse.core.ids import request_id as new_request_id
from gatehouse.core.principal import LOCAL, Principal
from gatehouse.core.rerank import RerankRequest, RerankResponse
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
from gatehouse.gateway.guard_stage import guard_stages
from gatehouse.gateway.observer import Observer, ObserveStage
from gatehouse.gateway.pipeline import CallContext, ChatStream, Endpoint, Result, Stage, chain
from gatehouse.gateway.routing import Deployment, DeploymentStats
from gatehouse.gateway.routing.registry import (
    ModelGroup,
    ModelRegistry,
    new_breaker,
    new_capacity,
    single_deployment_group,
)
from gatehouse.gateway.routing.router import Router
from gatehouse.providers.base import AnyProvider, ModelInfo, Readiness
from gatehouse.providers.factory import ProviderFactory

if TYPE_CHECKING:
    from gatehouse.gateway.governance import Governance
    from gatehouse.gateway.trace_context import Tracer

log = logging.getLogger("gatehouse.gateway")


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
    ) -> None:
        """A ``tracer`` wraps the pipeline and its stages (see
        :mod:`gatehouse.gateway.trace_context`); the registry's providers are
        wrapped where they are built (:func:`build_gateway`)."""
        self.registry = registry
        self.router = router or Router(registry)
        self.governance = governance
        self.stages = tuple(stages)  # what admin work reaches into (privacy: the caches)
        self._started_at = started_at
        self._handle = chain(stages, self._dispatch, tracer=tracer)

    async def start(self) -> None:
        """Open what the stages need (databases, outbox, counters); the server calls it."""
        if self.governance is not None:
            await self.governance.start()

    async def stop(self) -> None:
        """Close what :meth:`start` opened, then the upstream connection pools."""
        if self.governance is not None:
            await self.governance.stop()
        for provider in self._providers():
            await provider.aclose()

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

    def models(self) -> list[ModelCard]:
        return [self._card(entry.name, entry.info.owned_by) for entry in self.registry.entries()]

    def model(self, name: str) -> ModelCard:
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

    async def _dispatch(self, ctx: CallContext) -> Result:
        request = ctx.request
        if isinstance(request, EmbeddingRequest):
            embedded = await self.router.embed(ctx, request)
            ctx.usage = embedded.usage
            return embedded
        if isinstance(request, RerankRequest):
            reranked = await self.router.rerank(ctx, request)
            ctx.usage = reranked.usage.as_usage()
            return reranked
        if not request.stream:
            completion = await self.router.complete(ctx, request)
            ctx.usage = completion.usage
            return completion
        # Always ask the provider for usage, so metering sees it; pass the
        # usage chunk on only when the client asked for it.
        wants_usage = request.include_usage()
        upstream = await self.router.stream(
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
        if ctx.first_token_at is None and any(c.delta.content for c in chunk.choices):
            ctx.first_token_at = time.monotonic()
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
    factory = ProviderFactory(settings)
    groups: list[ModelGroup] = []
    # Without the 'local' extra the in-process models are left out, as if turned
    # off: the gateway serves its configured upstreams, and a call naming a local
    # model (or an alias of one) is told which extra to install.
    unavailable: dict[str, str] = {}
    for model, enabled in (
        ("local/smollm2", settings.local.chat.enabled),
        ("local/minilm", settings.local.embeddings.enabled),
        # local/rerank ranks with its cross-encoder, else with local/minilm.
        (
            "local/rerank",
            settings.local.rerank.enabled
            and (
                settings.local.rerank.cross_encoder is not None or settings.local.embeddings.enabled
            ),
        ),
    ):
        if not enabled:
            continue
        if has_extra("local"):
            local: AnyProvider = factory.local(model)
            if tracer is not None:
                local = tracer.provider(local, deployment=model, group=model, config=None)
            groups.append(single_deployment_group(local, settings.router))
        else:
            unavailable[model] = MissingExtraError(model, "local").message
            log.warning("%s is off: %s", model, unavailable[model])
    for index, config in enumerate(settings.models):
        groups.append(
            _group(config, settings.router, factory, where=f"models[{index}]", tracer=tracer)
        )
    registry = ModelRegistry(groups=groups, aliases=settings.aliases, unavailable=unavailable)
    router = Router(registry, settings.router, observer=observer)

    def embed_call(request: EmbeddingRequest) -> Awaitable[EmbeddingResponse]:
        return router.embed(_context("embeddings", request, LOCAL, None), request)

    from gatehouse.gateway.governance import Governance

    governance = Governance(settings)
    stages = pipeline_stages(
        governance,
        observer=observer,
        guard=guard_stages(settings.guard, settings.aliases, stored=governance.guard_policies),
        caches=build_caches(
            settings.cache, embed_call, max_ttl=settings.retention.cache_entries_seconds
        ),
        bodies=access_log_bodies(settings),
    )
    return Gateway(
        registry,
        started_at=started_at,
        stages=stages,
        router=router,
        governance=governance,
        tracer=tracer,
    )


def access_log_bodies(settings: Settings) -> int | None:
    """How much of each body the access log keeps (redacted); ``None``: no bodies."""
    access = settings.observability.access_log
    return access.body_chars if access.enabled and access.bodies else None


def _group(
    config: ModelGroupConfig,
    router: RouterConfig,
    factory: ProviderFactory,
    *,
    where: str,
    tracer: Tracer | None = None,
) -> ModelGroup:
    deployments = []
    for index, deployment in enumerate(config.deployments):
        deployment_id = deployment.id or f"{config.name}#{index}"
        provider = factory.build(
            deployment,
            deployment_id=deployment_id,
            kind=config.mode,
            where=f"{where}.deployments[{index}]",
        )
        if tracer is not None:
            provider = tracer.provider(
                provider, deployment=deployment_id, group=config.name, config=deployment
            )
        deployments.append(
            Deployment(
                id=deployment_id,
                group=config.name,
                provider=provider,
                config=deployment,
                breaker=new_breaker(router.breaker),
                stats=DeploymentStats(alpha=router.latency_ewma_alpha),
                capacity=new_capacity(deployment, router),
                weight=deployment.weight,
                rpm=deployment.rpm,
                tpm=deployment.tpm,
                context_window=deployment.context_window or provider.info.context_window or None,
            )
        )
    windows = [d.context_window for d in deployments if d.context_window]
    return ModelGroup(
        name=config.name,
        info=ModelInfo(
            id=config.name,
            kind=config.mode,
            owned_by="gatehouse",
            context_window=min(windows) if windows else 0,
        ),
        deployments=deployments,
        strategy=config.strategy or router.strategy,
        num_retries=router.num_retries if config.num_retries is None else config.num_retries,
        fallbacks=list(config.fallbacks),
        context_window_fallbacks=list(config.context_window_fallbacks),
        content_policy_fallbacks=list(config.content_policy_fallbacks),
    )
