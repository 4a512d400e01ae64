"""What a described workload costs a day and a month on each model. Pure.

A workload is a number of requests a day, each sending ``input_tokens`` (a
share ``cached_fraction`` of them read from the provider's prompt cache) and
receiving ``output_tokens``. Each bucket is charged as the gateway charges a
finished call (:meth:`gatehouse.catalog.pricing.PricingTable.cost`): cached
input at the cache-read price, else the input price; output at the output
price. A month is 30 days.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, Field

from gatehouse.catalog.models import Catalog
from gatehouse.core.config import Price
from gatehouse.core.errors import NotFoundError

DAYS_A_MONTH = 30


class Workload(BaseModel):
    """Requests a day and the tokens of one request."""

    requests_per_day: float = Field(ge=0)
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cached_fraction: float = Field(default=0.0, ge=0.0, le=1.0)


@dataclass(frozen=True, slots=True)
class WorkloadCost:
    model: str
    per_request: float  # USD
    per_day: float
    per_month: float


def request_cost(price: Price, workload: Workload) -> float:
    """USD for one request of ``workload`` at ``price``."""
    cached = workload.input_tokens * workload.cached_fraction
    cache_read = price.cache_read_input_token_cost
    return (
        (workload.input_tokens - cached) * price.input_cost_per_token
        + cached * (price.input_cost_per_token if cache_read is None else cache_read)
        + workload.output_tokens * price.output_cost_per_token
    )


def workload_cost(model: str, price: Price, workload: Workload) -> WorkloadCost:
    per_request = request_cost(price, workload)
    per_day = per_request * workload.requests_per_day
    return WorkloadCost(model, per_request, per_day, per_day * DAYS_A_MONTH)


def estimate(
    catalog: Catalog, workload: Workload, models: Iterable[str] | None = None
) -> list[WorkloadCost]:
    """The workload's cost on each named catalog model (by name or alias), or on
    every chat model of the catalog; cheapest first. An unknown name is a
    NotFoundError naming it."""
    if models is None:
        chosen = [(name, e) for name, e in catalog.models.items() if e.mode == "chat"]
    else:
        chosen = []
        for model in models:
            found = catalog.find(model)
            if found is None:
                raise NotFoundError(f"model {model!r} is not in the catalog")
            chosen.append(found)
    costs = [workload_cost(name, entry.prices.price(), workload) for name, entry in chosen]
    return sorted(costs, key=lambda c: (c.per_request, c.model))
