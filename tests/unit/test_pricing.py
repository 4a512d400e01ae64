"""Costs from the pricing table: per model, per deployment, LiteLLM prices, aliases."""

from __future__ import annotations

import pytest

from gatehouse.catalog import PricingTable, TokenCounts
from gatehouse.core.config import Price, Settings


def test_a_deployment_price_overrides_the_model_price() -> None:
    table = PricingTable(
        {"gpt": Price(input_cost_per_token=1e-6, output_cost_per_token=2e-6)},
        {"gpt#cheap": Price(input_cost_per_token=1e-7, output_cost_per_token=2e-7)},
    )
    tokens = TokenCounts(prompt=1000, completion=500)
    assert table.cost("gpt", None, tokens) == pytest.approx(0.002)
    assert table.cost("gpt", "gpt#cheap", tokens) == pytest.approx(0.0002)
    assert table.cost("unknown", None, tokens) == 0.0


def test_cached_input_tokens_use_their_own_price() -> None:
    price = Price(
        input_cost_per_token=1.0, output_cost_per_token=0, cache_read_input_token_cost=0.1
    )
    table = PricingTable({"m": price})
    assert table.cost("m", None, TokenCounts(prompt=10, completion=0, cached=4)) == pytest.approx(
        6.4
    )


def test_deployment_prices_from_the_models_config_and_the_group_ceiling() -> None:
    settings = Settings.model_validate(
        {
            "aliases": {"fast": "chat"},
            "models": [
                {
                    "name": "chat",
                    "deployments": [
                        {
                            "provider": "openai_compat",
                            "model": "a",
                            "base_url": "http://127.0.0.1:1",
                            "input_cost_per_token": 1,
                            "output_cost_per_token": 3,
                        },
                        {
                            "id": "b",
                            "provider": "openai_compat",
                            "model": "b",
                            "base_url": "http://127.0.0.1:1",
                            "input_cost_per_token": 2,
                            "output_cost_per_token": 1,
                        },
                    ],
                }
            ],
        }
    )
    table = PricingTable.from_settings(settings)
    tokens = TokenCounts(prompt=1, completion=1)
    assert table.cost("chat", "chat#0", tokens) == 4
    assert table.cost("fast", "b", tokens) == 3
    # Before routing, the reservation uses the dearest of the group on each side.
    assert table.max_cost("fast", 1, 1) == 5
    assert table.max_cost("elsewhere", 1, 1) == 5


def test_cached_tokens_are_read_from_the_usage_details() -> None:
    from gatehouse.core.types import Usage

    usage = Usage.model_validate(
        {
            "prompt_tokens": 10,
            "completion_tokens": 2,
            "total_tokens": 12,
            "prompt_tokens_details": {"cached_tokens": 4},
        }
    )
    assert TokenCounts.of(usage) == TokenCounts(10, 2, 4)
    plain = Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2)
    assert TokenCounts.of(plain) == TokenCounts(1, 1, 0)
