"""The model catalog: what each model and deployment costs."""

from gatehouse.catalog.pricing import PricingTable, TokenCounts

__all__ = ["PricingTable", "TokenCounts"]
