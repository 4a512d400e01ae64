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


def _deployment(model: str, **extra: object) -> dict[str, object]:
    return {"provider": "openai_compat", "model": model, "base_url": "http://127.0.0.1:1", **extra}


def test_the_ceiling_covers_every_deployment_a_call_can_reach() -> None:
    settings = Settings.model_validate(
        {
            "pricing": {
                "deployments": {"big#0": {"input_cost_per_token": 7, "output_cost_per_token": 4}}
            },
            "models": [
                {
                    "name": "small",
                    "fallbacks": ["big"],
                    "deployments": [
                        _deployment("s", input_cost_per_token=1, output_cost_per_token=1)
                    ],
                },
                {
                    "name": "big",
                    "context_window_fallbacks": ["huge"],
                    "deployments": [_deployment("b")],
                },
                {
                    "name": "huge",
                    "deployments": [
                        _deployment("h", context_window=1_000_000),
                        _deployment("h2", context_window=8192),
                    ],
                },
                {"name": "free", "deployments": [_deployment("f", context_window=4096)]},
            ],
        }
    )
    table = PricingTable.from_settings(settings)
    # small falls back to big, priced in pricing.deployments: a call to small that
    # big answers is charged big's price, so small's reservation must cover it.
    assert table.cost("small", "big#0", TokenCounts(1, 1)) == 7 + 4
    assert table.max_cost("small", 1, 1) == 7 + 4
    # The largest window among the deployments a call may reach bounds a reply, but never
    # more than any model writes; a window unknown anywhere on the way leaves only that.
    assert table.completion_limit("huge") == 131_072
    assert table.completion_limit("big") == 131_072  # its own window is unknown
    assert table.completion_limit("free") == 4096
    assert table.max_cost("free", 100, 100) == 0.0  # priced nowhere: it costs nothing
    # The local model: its configured window; an unknown model: the longest reply.
    assert table.completion_limit("default") == 2048
    assert table.completion_limit("elsewhere") == 131_072
    assert table.max_cost("elsewhere", 1, 0) == 7  # might be routed anywhere


def test_a_cached_price_above_the_input_price_still_bounds() -> None:
    odd = Price(input_cost_per_token=1, output_cost_per_token=0, cache_read_input_token_cost=3)
    table = PricingTable({"m": odd})
    assert table.max_cost("elsewhere", 1, 0) == 3
