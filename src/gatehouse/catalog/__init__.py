"""The model catalog: what each model and deployment costs, and how many tokens a
request can take."""

from gatehouse.catalog.pricing import Ceiling, PricingTable, TokenCounts
from gatehouse.catalog.tokens import prompt_tokens

__all__ = ["Ceiling", "PricingTable", "TokenCounts", "prompt_tokens"]
