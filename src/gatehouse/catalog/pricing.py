"""Prices per model and per deployment, and the cost of a call from its usage.

Prices come from ``pricing.models`` / ``pricing.deployments`` in config and
from each routed deployment's ``input_cost_per_token`` /
``output_cost_per_token`` / ``cached_input_cost_per_token`` (LiteLLM's
``litellm_params`` names, carried over by the LiteLLM config loader). A
model group without its own price costs what its dearest deployment costs.
A deployment's price overrides its model's. Prices are USD per token (LiteLLM's
unit, so its ``input_cost_per_token`` values paste in unchanged). Cached input
tokens cost ``cache_read_input_token_cost`` when set, else the input price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gatehouse.core.config import Price, Settings
from gatehouse.core.types import Usage

FREE = Price()


@dataclass(frozen=True, slots=True)
class TokenCounts:
    prompt: int
    completion: int
    cached: int = 0

    @classmethod
    def of(cls, usage: Usage) -> TokenCounts:
        """Counts from a provider's usage; cached prompt tokens come from OpenAI's
        ``prompt_tokens_details.cached_tokens`` (which the Anthropic and Gemini
        adapters fill too)."""
        # An extra field: read it from pydantic's extras directly, since a missing
        # attribute costs a slow ``__getattr__`` on every request.
        extra = usage.__pydantic_extra__
        details: Any = None if extra is None else extra.get("prompt_tokens_details")
        if isinstance(details, dict):
            cached = details.get("cached_tokens")
        else:
            cached = getattr(details, "cached_tokens", None)
        return cls(usage.prompt_tokens, usage.completion_tokens, int(cached or 0))


class PricingTable:
    """Looks prices up and turns token counts into USD."""

    def __init__(
        self,
        models: Mapping[str, Price],
        deployments: Mapping[str, Price] | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self._models = dict(models)
        self._deployments = dict(deployments or {})
        self._aliases = dict(aliases or {})
        # The dearest price anyone could be routed to: admission reserves with
        # it before routing has picked a deployment, so the estimate is an
        # upper bound and a hard budget cannot be overrun.
        everything = [*self._models.values(), *self._deployments.values()]
        self._ceiling = Price(
            input_cost_per_token=max((p.input_cost_per_token for p in everything), default=0.0),
            output_cost_per_token=max((p.output_cost_per_token for p in everything), default=0.0),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> PricingTable:
        models = dict(settings.pricing.models)
        deployments = dict(settings.pricing.deployments)
        for group in settings.models:
            priced: list[Price] = []
            for index, config in enumerate(group.deployments):
                if config.input_cost_per_token is None and config.output_cost_per_token is None:
                    continue
                price = Price(
                    input_cost_per_token=config.input_cost_per_token or 0.0,
                    output_cost_per_token=config.output_cost_per_token or 0.0,
                    cache_read_input_token_cost=config.cached_input_cost_per_token,
                )
                deployments.setdefault(config.id or f"{group.name}#{index}", price)
                priced.append(price)
            if priced and group.name not in models:
                models[group.name] = Price(
                    input_cost_per_token=max(p.input_cost_per_token for p in priced),
                    output_cost_per_token=max(p.output_cost_per_token for p in priced),
                )
        return cls(models, deployments, settings.aliases)

    def price(self, model: str, deployment: str | None = None) -> Price:
        model = self._aliases.get(model, model)
        if deployment is not None and deployment in self._deployments:
            return self._deployments[deployment]
        if model in self._models:
            return self._models[model]
        if deployment is not None and deployment in self._models:
            return self._models[deployment]
        return FREE

    def cost(self, model: str, deployment: str | None, tokens: TokenCounts) -> float:
        """The USD cost of a finished call."""
        price = self.price(model, deployment)
        cached = min(tokens.cached, tokens.prompt)
        cached_price = price.cache_read_input_token_cost
        if cached_price is None:
            cached_price = price.input_cost_per_token
        return (
            (tokens.prompt - cached) * price.input_cost_per_token
            + cached * cached_price
            + tokens.completion * price.output_cost_per_token
        )

    def max_cost(self, model: str, prompt_tokens: int, max_completion_tokens: int) -> float:
        """An upper bound on what a call can cost before its deployment is known."""
        # A known model costs at most its (group's dearest) price; an unknown
        # one might be routed anywhere.
        ceiling = self._models.get(self._aliases.get(model, model), self._ceiling)
        return (
            prompt_tokens * ceiling.input_cost_per_token
            + max_completion_tokens * ceiling.output_cost_per_token
        )
