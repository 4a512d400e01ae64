"""Prices per model and per deployment, and the cost of a call from its usage.

Prices come from ``pricing.models`` / ``pricing.deployments`` in config,
from each routed deployment's ``input_cost_per_token`` /
``output_cost_per_token`` / ``cache_read_input_token_cost`` /
``cache_creation_input_token_cost`` / ``output_cost_per_reasoning_token``
(LiteLLM's ``litellm_params`` names, carried over by the LiteLLM config loader),
and, for a deployment that none of those prices (neither it nor its group), from
the model catalog entry of its upstream model (:mod:`gatehouse.catalog.models`).
A model group without its own price costs what its dearest deployment costs.
A deployment's price overrides its model's. Prices are USD per token (LiteLLM's
unit, so its ``input_cost_per_token`` values paste in unchanged).

Each usage bucket (:class:`gatehouse.core.usage.TokenCounts`) has its price:
uncached input ``input_cost_per_token``; cache reads
``cache_read_input_token_cost`` and cache writes
``cache_creation_input_token_cost``, each the input price when unset; visible
output ``output_cost_per_token``; reasoning ``output_cost_per_reasoning_token``,
the output price when unset.
A rerank call costs ``input_cost_per_query`` (LiteLLM's name: USD a search,
Cohere's billed unit) on top of its tokens.

Before routing has picked a deployment, :meth:`PricingTable.max_cost` bounds
what a call can cost: the dearest price among every deployment it may reach
(its group's and those of its fallback groups), and, when the request sets no
completion limit, the longest completion those deployments can write
(:meth:`PricingTable.completion_limit`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gatehouse.catalog.models import Catalog, load_catalog
from gatehouse.core.config import DeploymentConfig, ModelGroupConfig, Price, Settings
from gatehouse.core.errors import ConfigError
from gatehouse.core.usage import TokenCounts

__all__ = ["FREE", "Ceiling", "PricingTable", "TokenCounts"]

FREE = Price()
# The longest completion any current hosted model writes (GPT-5 and Claude with
# its long-output option: 128K tokens); the bound when a model's window is unknown.
MAX_OUTPUT_TOKENS = 131_072
# The built-in chat model, whose context window is in the config.
LOCAL_CHAT_MODEL = "local/smollm2"


@dataclass(frozen=True, slots=True)
class Ceiling:
    """The most a call to one model can cost a token, and the longest reply it can get."""

    price: Price  # the dearest input and output prices among the deployments it may reach
    window: int | None  # their largest context window; None when any is unknown


class PricingTable:
    """Looks prices up and turns token counts into USD."""

    def __init__(
        self,
        models: Mapping[str, Price],
        deployments: Mapping[str, Price] | None = None,
        aliases: Mapping[str, str] | None = None,
        ceilings: Mapping[str, Ceiling] | None = None,
    ) -> None:
        self._models = dict(models)
        self._deployments = dict(deployments or {})
        self._aliases = dict(aliases or {})
        self._ceilings = dict(ceilings or {})
        # The dearest price anyone could be routed to, for a model the table
        # knows nothing of: admission reserves with it before routing has
        # picked a deployment, so a hard budget cannot be overrun.
        self._ceiling = _dearest([*self._models.values(), *self._deployments.values()])

    @classmethod
    def from_settings(cls, settings: Settings) -> PricingTable:
        models = dict(settings.pricing.models)
        deployments = dict(settings.pricing.deployments)
        catalog = load_catalog(settings.catalog.path)
        for group in settings.models:
            priced: list[Price] = []
            for index, config in enumerate(group.deployments):
                name = deployment_name(group.name, index, config)
                price = settings.pricing.deployments.get(name) or _deployment_price(config)
                if price is None and group.name not in models:
                    price = catalog_price(catalog, config)
                if price is None:
                    continue
                deployments.setdefault(name, price)
                priced.append(price)
            if priced and group.name not in models:
                models[group.name] = _group_price(priced)
        table = cls(models, deployments, settings.aliases)
        windows = {LOCAL_CHAT_MODEL: settings.local.chat.context_window}
        # The local model is free unless priced; but whatever it is named to the
        # router, nothing here proves that, so it is bounded like an unknown model.
        table._ceilings[LOCAL_CHAT_MODEL] = Ceiling(
            _dearest([models.get(LOCAL_CHAT_MODEL, table._ceiling)]), windows[LOCAL_CHAT_MODEL]
        )
        for group in settings.models:
            table._ceilings[group.name] = table._reachable(group.name, settings.models, windows)
        return table

    def replace_with(self, other: PricingTable) -> None:
        """Take ``other``'s prices (a configuration reload): every stage holding this
        table prices with them from the next call on."""
        self.__dict__.update(other.__dict__)

    def price(self, model: str, deployment: str | None = None) -> Price:
        model = self._aliases.get(model, model)
        if deployment is not None and deployment in self._deployments:
            return self._deployments[deployment]
        if model in self._models:
            return self._models[model]
        if deployment is not None and deployment in self._models:
            return self._models[deployment]
        return FREE

    def known_price(self, model: str) -> Price | None:
        """The price of a model (or alias), or None when nothing prices it (where
        :meth:`price` would charge it nothing)."""
        return self._models.get(self._aliases.get(model, model))

    def cost(self, model: str, deployment: str | None, tokens: TokenCounts) -> float:
        """The USD cost of a finished call: each bucket at its own price (cache
        reads and writes at the input price, reasoning at the output price,
        where the price names none of its own)."""
        price = self.price(model, deployment)
        input_price, output_price = price.input_cost_per_token, price.output_cost_per_token
        cache_read = _or(price.cache_read_input_token_cost, input_price)
        cache_write = _or(price.cache_creation_input_token_cost, input_price)
        reasoning = _or(price.output_cost_per_reasoning_token, output_price)
        return (
            tokens.uncached_input * input_price
            + min(tokens.cached, tokens.prompt) * cache_read
            + min(tokens.cache_write, tokens.prompt) * cache_write
            + tokens.visible_output * output_price
            + min(tokens.reasoning, tokens.completion) * reasoning
            + tokens.queries * price.input_cost_per_query
        )

    def max_cost(self, model: str, prompt_tokens: int, max_completion_tokens: int) -> float:
        """An upper bound on what a call can cost before its deployment is known."""
        price = self._ceiling_of(model).price
        return (
            prompt_tokens * price.input_cost_per_token
            + max_completion_tokens * price.output_cost_per_token
            # A rerank call is one search (Cohere bills one per 100 documents).
            + price.input_cost_per_query
        )

    def completion_limit(self, model: str) -> int:
        """The most completion tokens a call can get when the request sets no limit: the
        largest context window it may reach, and never more than any model writes."""
        window = self._ceiling_of(model).window
        return MAX_OUTPUT_TOKENS if window is None else min(window, MAX_OUTPUT_TOKENS)

    def _reachable(
        self, model: str, groups: list[ModelGroupConfig], windows: Mapping[str, int]
    ) -> Ceiling:
        """The ceiling over every deployment a call to ``model`` may end at: its group's
        and, through fallbacks, other groups'. Each is priced as :meth:`cost` will
        price it (the deployment's price, else the requested model's)."""
        by_name = {group.name: group for group in groups}
        prices: list[Price] = []
        reach: list[int | None] = []
        seen: set[str] = set()
        todo = [model]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            group = by_name.get(name)
            if group is None:  # a built-in model: one deployment of the same name
                prices.append(self.price(model, name))
                reach.append(windows.get(name))
                continue
            for index, config in enumerate(group.deployments):
                prices.append(self.price(model, deployment_name(name, index, config)))
                reach.append(config.context_window)
            todo += [
                *group.fallbacks,
                *group.context_window_fallbacks,
                *group.content_policy_fallbacks,
            ]
        known = [w for w in reach if w is not None]
        return Ceiling(_dearest(prices), max(known) if len(known) == len(reach) else None)

    def _ceiling_of(self, model: str) -> Ceiling:
        model = self._aliases.get(model, model)
        ceiling = self._ceilings.get(model)
        if ceiling is not None:
            return ceiling
        # A priced model outside the configured groups costs its price (every
        # input token at its dearest input price, cache writes included, and
        # every output token at its dearest output price); an unknown one might
        # be routed anywhere.
        price = self._models.get(model)
        if price is None:
            return Ceiling(self._ceiling, None)
        ceiling = self._ceilings[model] = Ceiling(_dearest([price]), None)
        return ceiling


def _or(price: float | None, otherwise: float) -> float:
    return otherwise if price is None else price


def deployment_name(group: str, index: int, config: DeploymentConfig) -> str:
    """A deployment's id: its own, else ``<group>#<index>``."""
    return config.id or f"{group}#{index}"


def catalog_price(catalog: Catalog, config: DeploymentConfig) -> Price | None:
    """The catalog's price for a deployment's model (``catalog_model``, else its
    upstream ``model``), or None when the catalog has no such entry."""
    found = catalog.find(config.catalog_model or config.model)
    if found is None and config.catalog_model is not None:
        raise ConfigError(
            f"catalog_model {config.catalog_model!r} (deployment of model {config.model!r}) "
            "is not in the model catalog"
        )
    return None if found is None else found[1].prices.price()


def _deployment_price(config: DeploymentConfig) -> Price | None:
    """The price a deployment's own config sets, or None when it sets none."""
    prices = (
        config.input_cost_per_token,
        config.output_cost_per_token,
        config.cached_input_cost_per_token,
        config.cache_creation_input_token_cost,
        config.output_cost_per_reasoning_token,
        config.input_cost_per_query,
    )
    if all(price is None for price in prices):
        return None
    return Price(
        input_cost_per_token=config.input_cost_per_token or 0.0,
        output_cost_per_token=config.output_cost_per_token or 0.0,
        cache_read_input_token_cost=config.cached_input_cost_per_token,
        cache_creation_input_token_cost=config.cache_creation_input_token_cost,
        output_cost_per_reasoning_token=config.output_cost_per_reasoning_token,
        input_cost_per_query=config.input_cost_per_query or 0.0,
    )


def _group_price(prices: list[Price]) -> Price:
    """What a group without its own price costs: each bucket at its dearest
    deployment's price for it."""

    def dearest(name: str, otherwise: str) -> float | None:
        # Unset everywhere stays unset (the fallback price applies); else a
        # deployment that leaves it unset charges its fallback price for it.
        if all(getattr(p, name) is None for p in prices):
            return None
        return max(_or(getattr(p, name), getattr(p, otherwise)) for p in prices)

    return Price(
        input_cost_per_token=max(p.input_cost_per_token for p in prices),
        output_cost_per_token=max(p.output_cost_per_token for p in prices),
        cache_read_input_token_cost=dearest("cache_read_input_token_cost", "input_cost_per_token"),
        cache_creation_input_token_cost=dearest(
            "cache_creation_input_token_cost", "input_cost_per_token"
        ),
        output_cost_per_reasoning_token=dearest(
            "output_cost_per_reasoning_token", "output_cost_per_token"
        ),
        input_cost_per_query=max(p.input_cost_per_query for p in prices),
    )


def _dearest(prices: Iterable[Price]) -> Price:
    """A price as high as each of ``prices`` on every side: any input token
    (cache read and write included) at the dearest input price, any output
    token (reasoning included) at the dearest output price."""
    inputs, outputs, queries = [0.0], [0.0], [0.0]
    for price in prices:
        inputs += [
            price.input_cost_per_token,
            price.cache_read_input_token_cost or 0.0,
            price.cache_creation_input_token_cost or 0.0,
        ]
        outputs += [price.output_cost_per_token, price.output_cost_per_reasoning_token or 0.0]
        queries.append(price.input_cost_per_query)
    return Price(
        input_cost_per_token=max(inputs),
        output_cost_per_token=max(outputs),
        input_cost_per_query=max(queries),
    )
