"""A cost test per usage bucket against the pricing table, and where the prices come from.

Prices are powers of two, so every expected cost is exact in binary floating point.
"""

from __future__ import annotations

import pytest

from gatehouse.catalog import PricingTable, TokenCounts
from gatehouse.core.config import Price, Settings
from gatehouse.core.litellm_config import translate

PRICE = Price(
    input_cost_per_token=2**-10,
    cache_read_input_token_cost=2**-13,
    cache_creation_input_token_cost=2**-9,
    output_cost_per_token=2**-8,
    output_cost_per_reasoning_token=2**-7,
    input_cost_per_query=2**-2,
)
TABLE = PricingTable({"m": PRICE})


@pytest.mark.parametrize(
    ("bucket", "tokens", "expected"),
    [
        ("uncached input", TokenCounts(prompt=64, completion=0), 64 * 2**-10),
        ("cache read", TokenCounts(prompt=64, completion=0, cached=64), 64 * 2**-13),
        ("cache write", TokenCounts(prompt=64, completion=0, cache_write=64), 64 * 2**-9),
        ("output", TokenCounts(prompt=0, completion=64), 64 * 2**-8),
        ("reasoning", TokenCounts(prompt=0, completion=64, reasoning=64), 64 * 2**-7),
        ("rerank search", TokenCounts(prompt=0, completion=0, queries=2), 2 * 2**-2),
    ],
)
def test_each_bucket_costs_its_own_price(bucket: str, tokens: TokenCounts, expected: float) -> None:
    assert TABLE.cost("m", None, tokens) == expected, bucket


def test_a_call_with_every_bucket_costs_their_sum() -> None:
    tokens = TokenCounts(prompt=100, completion=40, cached=60, cache_write=24, reasoning=8)
    assert TABLE.cost("m", None, tokens) == (
        16 * 2**-10 + 60 * 2**-13 + 24 * 2**-9 + 32 * 2**-8 + 8 * 2**-7
    )


def test_unpriced_buckets_cost_the_input_or_the_output_price() -> None:
    table = PricingTable({"m": Price(input_cost_per_token=2**-10, output_cost_per_token=2**-8)})
    tokens = TokenCounts(prompt=100, completion=40, cached=60, cache_write=24, reasoning=8)
    assert table.cost("m", None, tokens) == 100 * 2**-10 + 40 * 2**-8


def _settings(**deployment: object) -> Settings:
    return Settings.model_validate(
        {
            "models": [
                {
                    "name": "claude",
                    "deployments": [
                        {"id": "c", "provider": "anthropic", "model": "claude-x", **deployment}
                    ],
                }
            ]
        }
    )


def test_a_deployment_prices_every_bucket_under_litellm_names() -> None:
    settings = _settings(
        input_cost_per_token=2**-10,
        output_cost_per_token=2**-8,
        cache_read_input_token_cost=2**-13,
        cache_creation_input_token_cost=2**-9,
        output_cost_per_reasoning_token=2**-7,
    )
    table = PricingTable.from_settings(settings)
    assert table.price("claude", "c") == PRICE.model_copy(update={"input_cost_per_query": 0.0})
    # The group without a price of its own charges its deployment's, bucket by bucket.
    assert table.price("claude") == table.price("claude", "c")
    # gatehouse's older name for the cache-read price still works.
    older = _settings(input_cost_per_token=1, cached_input_cost_per_token=2**-3)
    assert PricingTable.from_settings(older).price("claude", "c").cache_read_input_token_cost == (
        2**-3
    )


def test_a_litellm_config_carries_every_bucket_price() -> None:
    params = {
        "model": "anthropic/claude-sonnet-4-5",
        "input_cost_per_token": 3e-6,
        "output_cost_per_token": 1.5e-5,
        "cache_read_input_token_cost": 3e-7,
        "cache_creation_input_token_cost": 3.75e-6,
        "output_cost_per_reasoning_token": 2e-5,
    }
    settings = Settings.model_validate(
        translate({"model_list": [{"model_name": "claude", "litellm_params": params}]})
    )
    price = PricingTable.from_settings(settings).price("claude", "claude#0")
    assert (
        price.input_cost_per_token,
        price.cache_read_input_token_cost,
        price.cache_creation_input_token_cost,
        price.output_cost_per_token,
        price.output_cost_per_reasoning_token,
    ) == (3e-6, 3e-7, 3.75e-6, 1.5e-5, 2e-5)


def test_the_reservation_bound_covers_the_dearest_bucket() -> None:
    # A cache write dearer than plain input (Anthropic's is 1.25x), and reasoning
    # dearer than output: the bound before routing must not undercharge either.
    table = PricingTable(
        {
            "m": Price(
                input_cost_per_token=2**-10,
                cache_creation_input_token_cost=2**-9,
                output_cost_per_token=2**-8,
                output_cost_per_reasoning_token=2**-7,
            )
        }
    )
    bound = 10 * 2**-9 + 10 * 2**-7
    assert table.max_cost("m", 10, 10) == bound
    assert table.max_cost("unknown", 10, 10) == bound
