"""The model catalog: the shipped YAML loads, bad files name the entry, overlays
replace by name, and the gateway's prices come from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.catalog.models import load_catalog, parse_catalog, shipped_catalog
from gatehouse.catalog.pricing import PricingTable
from gatehouse.core.config import Settings
from gatehouse.core.errors import ConfigError
from gatehouse.core.usage import TokenCounts
from gatehouse.gateway.wiring import changed_sections


def test_the_shipped_catalog_loads_with_every_task() -> None:
    catalog = shipped_catalog()
    assert catalog.as_of
    assert {"gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash", "local/smollm2"} <= set(
        catalog.models
    )
    assert {"chat", "rag", "code", "extraction", "agent", "vision"} <= set(catalog.tasks)
    for name, entry in catalog.models.items():
        assert entry.max_output_tokens <= entry.context_window, name
        if entry.mode == "chat":
            assert entry.prices.output >= entry.prices.input or entry.provider == "local", name
        if entry.prices.cached_input is not None:
            assert entry.prices.cached_input <= entry.prices.input, name


def test_the_shipped_file_is_package_data() -> None:
    # pyproject's package-data must carry the YAML into a wheel.
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"catalog/data/*.yaml"' in pyproject


def test_prices_per_million_become_per_token_prices() -> None:
    price = shipped_catalog().models["claude-haiku-4-5"].prices.price()
    assert price.input_cost_per_token == pytest.approx(1.00e-6)
    assert price.output_cost_per_token == pytest.approx(5.00e-6)
    assert price.cache_read_input_token_cost == pytest.approx(0.10e-6)
    assert price.cache_creation_input_token_cost == pytest.approx(1.25e-6)
    assert price.output_cost_per_reasoning_token is None  # billed as output


def test_find_by_name_alias_and_provider_prefix() -> None:
    catalog = shipped_catalog()
    found = catalog.find("gpt-4o-mini-2024-07-18")
    assert found is not None
    assert found[0] == "gpt-4o-mini"
    prefixed = catalog.find("openai/gpt-4o")
    assert prefixed is not None
    assert prefixed[0] == "gpt-4o"
    assert catalog.find("my-finetune") is None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "models:\n  m1:\n    provider: x\n    prices: {input: -1}\n"
            "    context_window: 10\n    max_output_tokens: 5\n",
            "models.m1.prices.input",
        ),
        (
            "models:\n  m1:\n    provider: x\n    prices: {}\n    context_window: 10\n"
            "    max_output_tokens: 50\n",
            "models.m1",
        ),
        ("models:\n  m1:\n    provider: x\n    prices: {}\n", "models.m1.context_window"),
        (
            "models:\n  m1:\n    provider: x\n    prices: {inptu: 1}\n    context_window: 10\n"
            "    max_output_tokens: 5\n",
            "models.m1.prices.inptu",
        ),
        ("tasks:\n  t1: {input_tokens: 0, output_tokens: 5}\n", "tasks.t1.input_tokens"),
        ("tasks:\n  t1: {input_tokens: 1, output_tokens: 5, requires: [telepathy]}\n", "t1"),
    ],
)
def test_a_bad_entry_is_one_error_naming_file_and_entry(text: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_catalog(text, "my-catalog.yaml")
    message = str(caught.value)
    assert message.startswith("my-catalog.yaml: ")
    assert named in message


def test_not_yaml_and_not_a_mapping_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_catalog("models: [", "c.yaml")
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_catalog("- a\n- b\n", "c.yaml")


def test_an_alias_claimed_twice_is_refused() -> None:
    text = (
        "models:\n"
        "  a: {provider: x, prices: {}, context_window: 10, max_output_tokens: 1, aliases: [z]}\n"
        "  b: {provider: x, prices: {}, context_window: 10, max_output_tokens: 1, aliases: [z]}\n"
    )
    with pytest.raises(ConfigError, match="alias 'z' is already 'a'"):
        parse_catalog(text, "c.yaml")


def test_an_overlay_replaces_and_adds_by_name(tmp_path: Path) -> None:
    mine = tmp_path / "catalog.yaml"
    mine.write_text(
        "models:\n"
        "  gpt-4o:\n"
        "    provider: openai\n"
        "    prices: {input: 2.0, output: 8.0}\n"
        "    context_window: 128000\n"
        "    max_output_tokens: 16384\n"
        "  my-finetune:\n"
        "    provider: openai\n"
        "    prices: {input: 3.0, output: 12.0}\n"
        "    context_window: 16000\n"
        "    max_output_tokens: 4000\n"
        "tasks:\n"
        "  triage: {input_tokens: 700, output_tokens: 50}\n"
    )
    catalog = load_catalog(mine)
    assert catalog.models["gpt-4o"].prices.input == 2.0
    assert catalog.models["gpt-4o"].aliases == []  # replaced whole, not merged
    assert catalog.find("my-finetune") is not None
    assert catalog.models["gpt-4o-mini"] == shipped_catalog().models["gpt-4o-mini"]
    assert set(catalog.tasks) == set(shipped_catalog().tasks) | {"triage"}


def test_an_unreadable_overlay_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"catalog\.path: cannot read"):
        load_catalog(tmp_path / "absent.yaml")


def _settings(deployment: dict[str, object], **more: object) -> Settings:
    group = {"name": "g", "deployments": [{"provider": "anthropic", **deployment}]}
    return Settings.model_validate({"models": [group], **more})


def test_an_unpriced_deployment_costs_its_catalog_price() -> None:
    table = PricingTable.from_settings(_settings({"model": "claude-haiku-4-5-20251001"}))
    tokens = TokenCounts(prompt=1_000_000, completion=1_000_000, cached=200_000, cache_write=0)
    # 800K uncached at $1, 200K cache reads at $0.10, 1M output at $5.
    assert table.cost("g", "g#0", tokens) == pytest.approx(0.8 + 0.02 + 5.0)
    assert table.known_price("g") == table.price("g")


def test_config_prices_win_over_the_catalog() -> None:
    own = _settings({"model": "claude-haiku-4-5", "input_cost_per_token": 1e-7})
    assert PricingTable.from_settings(own).price("g").input_cost_per_token == 1e-7
    by_group = _settings(
        {"model": "claude-haiku-4-5"},
        pricing={"models": {"g": {"input_cost_per_token": 2e-7}}},
    )
    assert PricingTable.from_settings(by_group).price("g", "g#0").input_cost_per_token == 2e-7
    by_id = _settings(
        {"model": "claude-haiku-4-5"},
        pricing={"deployments": {"g#0": {"input_cost_per_token": 3e-7}}},
    )
    table = PricingTable.from_settings(by_id)
    assert table.price("g", "g#0").input_cost_per_token == 3e-7
    assert table.price("g").input_cost_per_token == 3e-7  # the group costs its dearest


def test_an_uncatalogued_model_stays_unpriced() -> None:
    table = PricingTable.from_settings(_settings({"model": "my-own-model"}))
    assert table.known_price("g") is None


def test_catalog_model_names_the_entry_and_must_exist() -> None:
    named = _settings({"model": "prod-deployment-7", "catalog_model": "claude-haiku-4-5"})
    assert PricingTable.from_settings(named).price("g").output_cost_per_token == pytest.approx(5e-6)
    wrong = _settings({"model": "prod-deployment-7", "catalog_model": "claude-9"})
    with pytest.raises(ConfigError, match="catalog_model 'claude-9'"):
        PricingTable.from_settings(wrong)


def test_the_overlay_prices_the_gateway(tmp_path: Path) -> None:
    mine = tmp_path / "catalog.yaml"
    mine.write_text(
        "models:\n  my-own-model: {provider: x, prices: {input: 4, output: 8}, "
        "context_window: 8000, max_output_tokens: 1000}\n"
    )
    settings = _settings({"model": "my-own-model"}, catalog={"path": str(mine)})
    price = PricingTable.from_settings(settings).price("g")
    assert price.input_cost_per_token == pytest.approx(4e-6)


def test_a_reload_applies_a_new_catalog_path(tmp_path: Path) -> None:
    mine = tmp_path / "catalog.yaml"
    mine.write_text("models: {}\n")
    before = Settings()
    after = Settings.model_validate({"catalog": {"path": str(mine)}})
    assert changed_sections(before, after) == (["catalog"], [])
