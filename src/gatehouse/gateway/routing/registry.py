"""Public model names to model groups, and groups to their deployments."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gatehouse.core.config import BreakerConfig, DeploymentConfig, RouterConfig, Strategy
from gatehouse.core.errors import ConfigError, InvalidRequestError, ModelNotFoundError
from gatehouse.gateway.routing.breaker import CircuitBreaker
from gatehouse.gateway.routing.capacity import Capacity
from gatehouse.gateway.routing.deployment import Deployment, DeploymentStats
from gatehouse.gateway.routing.hashring import HashRing
from gatehouse.providers.base import (
    AnyProvider,
    ChatProvider,
    EmbeddingProvider,
    ModelInfo,
    RerankProvider,
)

_KINDS = {"chat": "a chat model", "embedding": "an embedding model", "rerank": "a rerank model"}


@dataclass(eq=False)
class ModelGroup:
    """A public model name and the deployments that can answer it."""

    name: str
    info: ModelInfo
    deployments: list[Deployment]
    strategy: Strategy = "weighted"
    num_retries: int = 2
    fallbacks: list[str] = field(default_factory=list)
    context_window_fallbacks: list[str] = field(default_factory=list)
    content_policy_fallbacks: list[str] = field(default_factory=list)
    ring: HashRing | None = None
    # What the deployments serve, found once: isinstance against a runtime
    # Protocol costs microseconds and this is asked on every request. The
    # deployments of a group are fixed when it is built.
    _kinds: tuple[bool, bool, bool] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.strategy == "prefix_affinity":
            self.ring = HashRing({d.id: d.weight for d in self.deployments})

    @property
    def context_window(self) -> int | None:
        windows = [d.context_window for d in self.deployments if d.context_window]
        return min(windows) if windows else None

    def serves_chat(self) -> bool:
        return self._served()[0]

    def serves_embeddings(self) -> bool:
        return self._served()[1]

    def serves_rerank(self) -> bool:
        return self._served()[2]

    def _served(self) -> tuple[bool, bool, bool]:
        if self._kinds is None:
            providers = [d.provider for d in self.deployments]
            self._kinds = (
                self.info.kind == "chat" and all(isinstance(p, ChatProvider) for p in providers),
                self.info.kind == "embedding"
                and all(isinstance(p, EmbeddingProvider) for p in providers),
                self.info.kind == "rerank"
                and all(isinstance(p, RerankProvider) for p in providers),
            )
        return self._kinds


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A name clients can use: a group's own name or an alias of it."""

    name: str
    info: ModelInfo
    group: ModelGroup


def single_deployment_group(
    provider: AnyProvider, config: RouterConfig | None = None
) -> ModelGroup:
    """A group of one, for a model that has exactly one way to be served (the local ones)."""
    config = config or RouterConfig()
    deployment = Deployment(
        id=provider.info.id,
        group=provider.info.id,
        provider=provider,
        config=None,
        breaker=new_breaker(config.breaker),
        stats=DeploymentStats(alpha=config.latency_ewma_alpha),
        capacity=new_capacity(None, config),
        context_window=provider.info.context_window,
    )
    return ModelGroup(
        name=provider.info.id, info=provider.info, deployments=[deployment], num_retries=0
    )


def new_capacity(deployment: DeploymentConfig | None, router: RouterConfig) -> Capacity:
    """Capacity for a configured deployment, or for an in-process model when ``None``."""
    settings = router.admission
    if deployment is None:
        max_in_flight = settings.local_max_in_flight
    else:
        max_in_flight = deployment.max_in_flight or deployment.max_connections
    return Capacity(
        target_rps=deployment.target_rps if deployment else None,
        max_in_flight=max_in_flight,
        queue_size=settings.queue_size,
        queue_timeout=settings.queue_timeout,
        headroom=settings.headroom,
    )


def new_breaker(config: BreakerConfig) -> CircuitBreaker:
    return CircuitBreaker(failures=config.failures, window=config.window, cooldown=config.cooldown)


class ModelRegistry:
    def __init__(
        self,
        providers: Iterable[AnyProvider] = (),
        aliases: Mapping[str, str] | None = None,
        *,
        groups: Sequence[ModelGroup] = (),
        unavailable: Mapping[str, str] | None = None,
    ) -> None:
        """``unavailable`` maps models left out (an extra not installed) to why, for
        the not-found error of a call that names one of them or an alias of one."""
        self._groups: dict[str, ModelGroup] = {}
        self._unavailable = dict(unavailable or {})
        for group in [*(single_deployment_group(p) for p in providers), *groups]:
            self._groups[group.name] = group
        self._entries: dict[str, ModelEntry] = {
            name: ModelEntry(name, group.info, group) for name, group in self._groups.items()
        }
        for alias, target in (aliases or {}).items():
            if target not in self._groups:
                # An alias to a disabled model is dropped, not an error: turning a
                # model off should not require editing every alias that names it.
                if target in self._unavailable:
                    self._unavailable[alias] = self._unavailable[target]
                continue
            if alias in self._groups:
                raise ConfigError(f"aliases.{alias}: the alias hides a model of the same name")
            group = self._groups[target]
            self._entries[alias] = ModelEntry(alias, group.info, group)

    def entries(self) -> list[ModelEntry]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        """Is ``name`` a model group or an alias of one?"""
        return name in self._entries

    def groups(self) -> list[ModelGroup]:
        return list(self._groups.values())

    def get(self, name: str) -> ModelEntry:
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFoundError(name, hint=self._unavailable.get(name))
        return entry

    def group(self, name: str) -> ModelGroup:
        return self.get(name).group

    def chat(self, name: str) -> ModelGroup:
        group = self.group(name)
        if not group.serves_chat():
            raise InvalidRequestError(
                f"The model '{name}' is {_KINDS[group.info.kind]} and cannot be used for chat.",
                param="model",
            )
        return group

    def embedding(self, name: str) -> ModelGroup:
        group = self.group(name)
        if not group.serves_embeddings():
            raise InvalidRequestError(
                f"The model '{name}' is {_KINDS[group.info.kind]} and cannot create embeddings.",
                param="model",
            )
        return group

    def rerank(self, name: str) -> ModelGroup:
        group = self.group(name)
        if not group.serves_rerank():
            raise InvalidRequestError(
                f"The model '{name}' is {_KINDS[group.info.kind]} and cannot rerank.",
                param="model",
            )
        return group
