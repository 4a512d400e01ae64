"""A LiteLLM proxy config loads as it is; what gatehouse ignores is listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.core.config import load_settings
from gatehouse.core.errors import ConfigError

LITELLM = """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      rpm: 600
      tpm: 90000
      weight: 2
      timeout: 30
      input_cost_per_token: 0.0000025
      output_cost_per_token: 0.00001
    model_info:
      id: gpt-4o-primary
      max_input_tokens: 128000
  - model_name: gpt-4o
    litellm_params:
      model: azure/my-gpt4o
      api_base: https://example.openai.azure.com
      api_key: os.environ/AZURE_KEY
      api_version: "2024-10-21"
      stream_timeout: 5
  - model_name: claude
    litellm_params:
      model: anthropic/claude-3-5-haiku-latest
      api_key: os.environ/ANTHROPIC_API_KEY
      custom_llm_provider_thing: 1
  - model_name: local-vllm
    litellm_params:
      model: hosted_vllm/meta-llama/Llama-3.1-8B
      api_base: http://10.0.0.5:8000/v1
  - model_name: embedder
    litellm_params:
      model: openai/text-embedding-3-small
    model_info:
      mode: embedding

router_settings:
  routing_strategy: least-busy
  num_retries: 3
  allowed_fails: 2
  cooldown_time: 45
  fallbacks: [{"gpt-4o": ["claude"]}]
  context_window_fallbacks: [{"claude": ["gpt-4o"]}]
  redis_host: localhost

litellm_settings:
  drop_params: true
  request_timeout: 60

general_settings:
  master_key: sk-1234
  database_url: postgres://x
"""


def test_litellm_config_translates(tmp_path: Path) -> None:
    path = tmp_path / "litellm.yaml"
    path.write_text(LITELLM)
    settings = load_settings(path, environ={})
    groups = {g.name: g for g in settings.models}
    assert list(groups) == ["gpt-4o", "claude", "local-vllm", "embedder"]
    primary, azure = groups["gpt-4o"].deployments
    assert primary.id == "gpt-4o-primary"
    assert (primary.provider, primary.model) == ("openai_compat", "gpt-4o")
    assert primary.base_url == "https://api.openai.com/v1"
    assert primary.api_key_env == "OPENAI_API_KEY"
    assert (primary.rpm, primary.tpm, primary.weight) == (600, 90000, 2)
    assert primary.timeout.total == 30
    assert primary.context_window == 128000
    assert primary.input_cost_per_token == 0.0000025
    assert (azure.provider, azure.api_version, azure.timeout.first_token) == (
        "azure",
        "2024-10-21",
        5,
    )
    assert azure.timeout.total == 60  # litellm_settings.request_timeout
    assert groups["claude"].deployments[0].provider == "anthropic"
    assert groups["local-vllm"].deployments[0].base_url == "http://10.0.0.5:8000/v1"
    assert groups["embedder"].mode == "embedding"
    assert groups["gpt-4o"].fallbacks == ["claude"]
    assert groups["claude"].context_window_fallbacks == ["gpt-4o"]
    assert settings.router.strategy == "least_inflight"
    assert settings.router.num_retries == 3
    assert settings.router.breaker.failures == 3
    assert settings.router.breaker.cooldown == 45
    assert settings.auth.master_key is not None
    assert settings.auth.master_key.get_secret_value() == "sk-1234"
    assert set(settings.unsupported_keys) >= {
        "model_list[2].litellm_params.custom_llm_provider_thing",
        "router_settings.redis_host",
        "litellm_settings.drop_params",
        "general_settings.database_url",
    }


def test_master_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "litellm.yaml"
    path.write_text(
        "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x}\n"
        "general_settings: {master_key: os.environ/LITELLM_MASTER_KEY}\n"
    )
    with pytest.raises(ConfigError, match=r"general_settings\.master_key: environment variable"):
        load_settings(path, environ={})
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-env")
    settings = load_settings(path, environ={})
    assert settings.auth.master_key is not None
    assert settings.auth.master_key.get_secret_value() == "sk-env"


def test_unknown_provider_and_strategy_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model_list:\n  - model_name: x\n    litellm_params: {model: bedrock/claude}\n")
    with pytest.raises(
        ConfigError, match=r"model_list\[0\].litellm_params.model: provider 'bedrock'"
    ):
        load_settings(path, environ={})
    path.write_text(
        "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x}\n"
        "router_settings: {routing_strategy: cost-based-routing}\n"
    )
    with pytest.raises(ConfigError, match="routing_strategy"):
        load_settings(path, environ={})


def test_fallback_to_an_unknown_group_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "models:\n  - name: a\n    fallbacks: [nope]\n    deployments:\n"
        "      - {provider: openai_compat, model: m, base_url: 'http://x/v1'}\n"
    )
    with pytest.raises(ConfigError, match="unknown model group 'nope'"):
        load_settings(path, environ={})


def test_openai_compat_needs_a_base_url(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "models:\n  - name: a\n    deployments:\n      - {provider: openai_compat, model: m}\n"
    )
    with pytest.raises(ConfigError, match="base_url is required"):
        load_settings(path, environ={})
