"""The model catalog: what each model and deployment costs, what it can do, and
how many tokens a request can take.

- :mod:`~gatehouse.catalog.models`: the YAML catalog (prices, context windows,
  capabilities, task profiles), shipped and overlaid by ``catalog.path``.
- :mod:`~gatehouse.catalog.pricing`: the prices the gateway charges.
- :mod:`~gatehouse.catalog.workload`: a described workload's daily and monthly cost.
- :mod:`~gatehouse.catalog.selection` and :mod:`~gatehouse.catalog.scores`:
  ranking the configured models for a task (``gatehouse models recommend``).
- :mod:`~gatehouse.catalog.tokens`: token counts of a request.
"""

from gatehouse.catalog.models import Catalog, CatalogEntry, TaskProfile, load_catalog
from gatehouse.catalog.pricing import Ceiling, PricingTable, TokenCounts
from gatehouse.catalog.tokens import prompt_tokens
from gatehouse.catalog.workload import Workload, WorkloadCost, estimate

__all__ = [
    "Catalog",
    "CatalogEntry",
    "Ceiling",
    "PricingTable",
    "TaskProfile",
    "TokenCounts",
    "Workload",
    "WorkloadCost",
    "estimate",
    "load_catalog",
    "prompt_tokens",
]
