"""What a gateway is built from, kept so that a configuration reload can build it again.

:func:`gatehouse.gateway.service.build_gateway` builds a :class:`Wiring` once:
the parts that live as long as the process (the provider factory, the local
models, the governance stores, the caches, the observer and tracer). From it
and a :class:`~gatehouse.core.config.Settings`, :meth:`Wiring.registry` builds
the model groups and :meth:`Wiring.stages` the pipeline's stages; a reload
calls both with the new settings (:meth:`gatehouse.gateway.Gateway.reconfigure`).
A model group whose configuration did not change is kept as it is (its
connections, breaker and latency figures with it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gatehouse.core.config import GuardConfig, ModelGroupConfig, RouterConfig, Settings
from gatehouse.core.errors import MissingExtraError
from gatehouse.core.extras import has_extra
from gatehouse.gateway.cache import CacheStages
from gatehouse.gateway.guard_stage import guard_stages
from gatehouse.gateway.observer import Observer
from gatehouse.gateway.pipeline import Stage
from gatehouse.gateway.routing import Deployment, DeploymentStats
from gatehouse.gateway.routing.registry import (
    ModelGroup,
    ModelRegistry,
    new_breaker,
    new_capacity,
    single_deployment_group,
)
from gatehouse.providers.base import AnyProvider, ModelInfo
from gatehouse.providers.factory import ProviderFactory

if TYPE_CHECKING:
    from gatehouse.gateway.governance import Governance
    from gatehouse.gateway.trace_context import Tracer

log = logging.getLogger("gatehouse.gateway")

__all__ = ["RELOADABLE_SECTIONS", "Wiring", "changed_sections"]

RELOADABLE_SECTIONS = frozenset(
    {"models", "aliases", "router", "pricing", "catalog", "limits", "guard"}
)
"""The settings a running gateway takes on without a restart: routing (model
groups, deployments, aliases, router), prices (``pricing`` and the model
catalog's ``catalog.path``), limits and guard policies."""

_Built = dict[str, tuple[ModelGroupConfig, RouterConfig, ModelGroup]]
_Guard = tuple[GuardConfig, dict[str, str], list[Stage]]


class Wiring:
    def __init__(
        self,
        settings: Settings,
        governance: Governance,
        *,
        caches: CacheStages,
        observer: Observer | None = None,
        tracer: Tracer | None = None,
        bodies: int | None = None,
    ) -> None:
        self.governance = governance
        self.caches = caches
        self.observer = observer
        self.tracer = tracer
        self.bodies = bodies
        self._factory = ProviderFactory(settings)
        self._local, self._unavailable = self._local_groups(settings)
        # What is serving, and what the last registry()/stages() built: commit()
        # makes the second the first, once the gateway serves it.
        self._built: _Built = {}
        self._guard: _Guard | None = None
        self._pending: tuple[_Built, _Guard | None] = ({}, None)

    def registry(self, settings: Settings) -> ModelRegistry:
        """The model groups ``settings`` declare; raises ``ConfigError`` for one that
        cannot be built (an unknown provider, an alias hiding a group)."""
        factory = ProviderFactory(settings)
        built: _Built = {}
        groups = list(self._local)
        for index, config in enumerate(settings.models):
            known = self._built.get(config.name)
            if known is not None and known[0] == config and known[1] == settings.router:
                group = known[2]
            else:
                group = _group(
                    config, settings.router, factory, where=f"models[{index}]", tracer=self.tracer
                )
            built[config.name] = (config, settings.router, group)
            groups.append(group)
        registry = ModelRegistry(
            groups=groups, aliases=settings.aliases, unavailable=self._unavailable
        )
        self._pending = (built, self._pending[1])
        return registry

    def stages(self, settings: Settings) -> list[Stage]:
        """The pipeline's stages, in :func:`~gatehouse.gateway.service.pipeline_stages`'s
        order, guarded by ``settings.guard`` (the guard's stages are kept when it
        and the aliases did not change)."""
        from gatehouse.gateway.service import pipeline_stages

        guard = self._guard
        if guard is None or guard[:2] != (settings.guard, settings.aliases):
            stages = guard_stages(
                settings.guard, settings.aliases, stored=self.governance.guard_policies
            )
            guard = (settings.guard, dict(settings.aliases), stages)
        self._pending = (self._pending[0], guard)
        return pipeline_stages(
            self.governance,
            observer=self.observer,
            guard=guard[2],
            caches=self.caches,
            bodies=self.bodies,
        )

    def commit(self) -> None:
        """The groups and guard stages last built are the ones serving now."""
        self._built, self._guard = self._pending

    def _local_groups(self, settings: Settings) -> tuple[list[ModelGroup], dict[str, str]]:
        # Without the 'local' extra the in-process models are left out, as if turned
        # off: the gateway serves its configured upstreams, and a call naming a local
        # model (or an alias of one) is told which extra to install.
        groups: list[ModelGroup] = []
        unavailable: dict[str, str] = {}
        for model, enabled in (
            ("local/smollm2", settings.local.chat.enabled),
            ("local/minilm", settings.local.embeddings.enabled),
            # local/rerank ranks with its cross-encoder, else with local/minilm.
            (
                "local/rerank",
                settings.local.rerank.enabled
                and (
                    settings.local.rerank.cross_encoder is not None
                    or settings.local.embeddings.enabled
                ),
            ),
        ):
            if not enabled:
                continue
            if has_extra("local"):
                local: AnyProvider = self._factory.local(model)
                if self.tracer is not None:
                    local = self.tracer.provider(local, deployment=model, group=model, config=None)
                groups.append(single_deployment_group(local, settings.router))
            else:
                unavailable[model] = MissingExtraError(model, "local").message
                log.warning("%s is off: %s", model, unavailable[model])
        return groups, unavailable


def changed_sections(current: Settings, new: Settings) -> tuple[list[str], list[str]]:
    """The top-level sections ``new`` changes: (those a reload applies, those only a
    restart applies)."""
    changed = [
        name
        for name in Settings.model_fields
        if name != "unsupported_keys" and getattr(current, name) != getattr(new, name)
    ]
    return (
        [name for name in changed if name in RELOADABLE_SECTIONS],
        [name for name in changed if name not in RELOADABLE_SECTIONS],
    )


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
