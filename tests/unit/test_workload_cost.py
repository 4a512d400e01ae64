"""Workload cost arithmetic: per request, per day, per 30-day month, cache reads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gatehouse.catalog.models import shipped_catalog
from gatehouse.catalog.workload import Workload, estimate, request_cost, workload_cost
from gatehouse.core.config import Price
from gatehouse.core.errors import NotFoundError

PRICE = Price(
    input_cost_per_token=2e-6, output_cost_per_token=8e-6, cache_read_input_token_cost=0.5e-6
)


def test_request_day_and_month() -> None:
    workload = Workload(requests_per_day=10_000, input_tokens=2000, output_tokens=500)
    cost = workload_cost("m", PRICE, workload)
    assert cost.per_request == pytest.approx(2000 * 2e-6 + 500 * 8e-6)  # $0.008
    assert cost.per_day == pytest.approx(80.0)
    assert cost.per_month == pytest.approx(2400.0)


def test_cached_input_is_charged_at_the_cache_read_price() -> None:
    workload = Workload(
        requests_per_day=1, input_tokens=1000, output_tokens=0, cached_fraction=0.75
    )
    assert request_cost(PRICE, workload) == pytest.approx(250 * 2e-6 + 750 * 0.5e-6)
    no_cache_price = Price(input_cost_per_token=2e-6)
    assert request_cost(no_cache_price, workload) == pytest.approx(1000 * 2e-6)


def test_the_workload_is_validated() -> None:
    with pytest.raises(ValidationError):
        Workload(requests_per_day=1, input_tokens=1, output_tokens=1, cached_fraction=1.5)
    with pytest.raises(ValidationError):
        Workload(requests_per_day=-1, input_tokens=1, output_tokens=1)


def test_estimate_over_catalog_models_cheapest_first() -> None:
    catalog = shipped_catalog()
    workload = Workload(requests_per_day=1000, input_tokens=1_000_000, output_tokens=0)
    costs = estimate(catalog, workload, ["gpt-4o", "gpt-4o-mini-2024-07-18"])
    assert [c.model for c in costs] == ["gpt-4o-mini", "gpt-4o"]
    assert costs[0].per_request == pytest.approx(0.15)  # $0.15 per million input tokens
    assert costs[1].per_day == pytest.approx(2500.0)
    every = estimate(catalog, workload)
    assert {c.model for c in every} == {n for n, e in catalog.models.items() if e.mode == "chat"}
    assert [c.per_request for c in every] == sorted(c.per_request for c in every)


def test_an_unknown_model_is_named() -> None:
    workload = Workload(requests_per_day=1, input_tokens=1, output_tokens=1)
    with pytest.raises(NotFoundError, match="'gpt-99' is not in the catalog"):
        estimate(shipped_catalog(), workload, ["gpt-99"])
