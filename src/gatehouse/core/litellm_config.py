"""Read a LiteLLM proxy config as it is, so a team can move over unchanged.

:func:`translate` maps a LiteLLM ``config.yaml`` (``model_list``,
``router_settings``, ``litellm_settings``, ``general_settings``) onto gatehouse's
own settings. Every key it does not act on is listed in ``unsupported_keys``,
which the server prints at start-up: nothing is silently ignored.
``docs/migrating-from-litellm.md`` has the full mapping.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from gatehouse.core.errors import ConfigError

ENV_PREFIX = "os.environ/"

# LiteLLM provider prefix -> (gatehouse provider, default base URL)
_PROVIDERS: dict[str, tuple[str, str | None]] = {
    "openai": ("openai_compat", "https://api.openai.com/v1"),
    "text-completion-openai": ("openai_compat", "https://api.openai.com/v1"),
    "azure": ("azure", None),
    "anthropic": ("anthropic", "https://api.anthropic.com"),
    "gemini": ("gemini", "https://generativelanguage.googleapis.com"),
    "hosted_vllm": ("openai_compat", None),
    "vllm": ("openai_compat", None),
    "openai_like": ("openai_compat", None),
    "ollama": ("openai_compat", "http://localhost:11434/v1"),
    "ollama_chat": ("openai_compat", "http://localhost:11434/v1"),
    "groq": ("openai_compat", "https://api.groq.com/openai/v1"),
    "mistral": ("openai_compat", "https://api.mistral.ai/v1"),
    "together_ai": ("openai_compat", "https://api.together.xyz/v1"),
    "deepseek": ("openai_compat", "https://api.deepseek.com/v1"),
    "fireworks_ai": ("openai_compat", "https://api.fireworks.ai/inference/v1"),
    "openrouter": ("openai_compat", "https://openrouter.ai/api/v1"),
    "perplexity": ("openai_compat", "https://api.perplexity.ai"),
    "xai": ("openai_compat", "https://api.x.ai/v1"),
    # Rerank APIs (model_info.mode: rerank).
    "cohere": ("cohere", "https://api.cohere.com"),
    "jina_ai": ("jina", "https://api.jina.ai"),
}

_STRATEGIES = {
    "simple-shuffle": "weighted",
    "least-busy": "least_inflight",
    "latency-based-routing": "lowest_latency",
    "usage-based-routing": "lowest_usage",
    "usage-based-routing-v2": "lowest_usage",
}

# LiteLLM's per-bucket prices, which a deployment accepts under the same names.
_PRICES = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_reasoning_token",
    "input_cost_per_query",
)

_PARAMS_HANDLED = {
    "model",
    "api_base",
    "base_url",
    "api_key",
    "api_version",
    "rpm",
    "tpm",
    "weight",
    "timeout",
    "stream_timeout",
    *_PRICES,
    "extra_headers",
}


def translate(config: Mapping[str, Any]) -> dict[str, Any]:
    """A gatehouse settings mapping equivalent to the LiteLLM ``config``."""
    unsupported: list[str] = []
    groups: dict[str, dict[str, Any]] = {}
    model_list = config.get("model_list") or []
    if not isinstance(model_list, list):
        raise ConfigError("model_list must be a list of models")
    for index, entry in enumerate(model_list):
        where = f"model_list[{index}]"
        if not isinstance(entry, Mapping) or "model_name" not in entry:
            raise ConfigError(f"{where}: each entry needs model_name and litellm_params")
        name = str(entry["model_name"])
        params = entry.get("litellm_params") or {}
        info = entry.get("model_info") or {}
        group = groups.setdefault(name, {"name": name, "deployments": []})
        if info.get("mode") in {"embedding", "rerank"}:
            group["mode"] = info["mode"]
        deployment = _deployment(params, info, where, unsupported)
        if group.get("mode") == "rerank" and deployment["provider"] == "openai_compat":
            # vLLM and other OpenAI-compatible servers rerank at /rerank.
            deployment["provider"] = "vllm"
        if info.get("id"):
            deployment["id"] = str(info["id"])
        group["deployments"].append(deployment)
        for key in entry:
            if key not in {"model_name", "litellm_params", "model_info"}:
                unsupported.append(f"{where}.{key}")
        for key in info:
            if key not in {"id", "mode", "max_input_tokens", "max_tokens", "base_model"}:
                unsupported.append(f"{where}.model_info.{key}")

    router: dict[str, Any] = {}
    _router_settings(config.get("router_settings") or {}, router, groups, unsupported)
    _litellm_settings(config.get("litellm_settings") or {}, router, groups, unsupported)

    out: dict[str, Any] = {"models": list(groups.values())}
    if router:
        out["router"] = router
    for key, value in (config.get("general_settings") or {}).items():
        if key == "master_key" and value is not None:
            out["auth"] = {"master_key": _env_or_literal(value, "general_settings", key)}
        else:
            unsupported.append(f"general_settings.{key}")
    for key in config:
        if key not in {"model_list", "router_settings", "litellm_settings", "general_settings"}:
            unsupported.append(key)
    out["unsupported_keys"] = unsupported
    return out


def _deployment(
    params: Mapping[str, Any], info: Mapping[str, Any], where: str, unsupported: list[str]
) -> dict[str, Any]:
    model = params.get("model")
    if not isinstance(model, str) or "/" not in model:
        raise ConfigError(f"{where}.litellm_params.model: expected 'provider/model', got {model!r}")
    prefix, upstream_model = model.split("/", 1)
    if prefix not in _PROVIDERS:
        raise ConfigError(
            f"{where}.litellm_params.model: provider {prefix!r} is not supported "
            f"(supported: {', '.join(sorted(_PROVIDERS))})"
        )
    provider, default_base = _PROVIDERS[prefix]
    deployment: dict[str, Any] = {"provider": provider, "model": upstream_model}
    base_url = params.get("api_base") or params.get("base_url") or default_base
    if base_url:
        deployment["base_url"] = _env_or_literal(base_url, f"{where}.litellm_params", "api_base")
    api_key = params.get("api_key")
    if isinstance(api_key, str):
        if api_key.startswith(ENV_PREFIX):
            deployment["api_key_env"] = api_key[len(ENV_PREFIX) :]
        else:
            deployment["api_key"] = api_key
    if params.get("api_version"):
        deployment["api_version"] = _env_or_literal(
            params["api_version"], f"{where}.litellm_params", "api_version"
        )
    for key in ("rpm", "tpm", "weight", *_PRICES):
        if params.get(key) is not None:
            deployment[key] = params[key]
    if isinstance(params.get("extra_headers"), Mapping):
        deployment["headers"] = dict(params["extra_headers"])
    timeout: dict[str, float] = {}
    if params.get("timeout") is not None:
        timeout["total"] = float(params["timeout"])
    if params.get("stream_timeout") is not None:
        timeout["first_token"] = float(params["stream_timeout"])
    if timeout:
        deployment["timeout"] = timeout
    window = info.get("max_input_tokens") or info.get("max_tokens")
    if window:
        deployment["context_window"] = int(window)
    for key in params:
        if key not in _PARAMS_HANDLED:
            unsupported.append(f"{where}.litellm_params.{key}")
    return deployment


def _router_settings(
    settings: Mapping[str, Any],
    router: dict[str, Any],
    groups: dict[str, dict[str, Any]],
    unsupported: list[str],
) -> None:
    for key, value in settings.items():
        if key == "routing_strategy":
            if value not in _STRATEGIES:
                raise ConfigError(
                    f"router_settings.routing_strategy: {value!r} is not supported "
                    f"(supported: {', '.join(sorted(_STRATEGIES))})"
                )
            router["strategy"] = _STRATEGIES[value]
        elif key == "num_retries":
            router["num_retries"] = value
        elif key == "allowed_fails":
            router.setdefault("breaker", {})["failures"] = max(1, int(value) + 1)
        elif key == "cooldown_time":
            router.setdefault("breaker", {})["cooldown"] = value
        elif key in {"fallbacks", "context_window_fallbacks", "content_policy_fallbacks"}:
            _fallbacks(value, key, f"router_settings.{key}", groups)
        else:
            unsupported.append(f"router_settings.{key}")


def _litellm_settings(
    settings: Mapping[str, Any],
    router: dict[str, Any],
    groups: dict[str, dict[str, Any]],
    unsupported: list[str],
) -> None:
    for key, value in settings.items():
        if key == "num_retries":
            router.setdefault("num_retries", value)
        elif key in {"fallbacks", "context_window_fallbacks", "content_policy_fallbacks"}:
            _fallbacks(value, key, f"litellm_settings.{key}", groups)
        elif key == "request_timeout":
            for group in groups.values():
                for deployment in group["deployments"]:
                    deployment.setdefault("timeout", {}).setdefault("total", float(value))
        else:
            unsupported.append(f"litellm_settings.{key}")


def _fallbacks(value: Any, kind: str, where: str, groups: dict[str, dict[str, Any]]) -> None:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of {{group: [fallback, ...]}} mappings")
    for item in value:
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: expected a list of {{group: [fallback, ...]}} mappings")
        for source, targets in item.items():
            if source not in groups:
                raise ConfigError(f"{where}: unknown model group {source!r}")
            listed = targets if isinstance(targets, list) else [targets]
            groups[source].setdefault(kind, []).extend(str(t) for t in listed)


def _env_or_literal(value: Any, where: str, key: str) -> str:
    """``os.environ/NAME`` read from the environment now; anything else as it is."""
    text = str(value)
    if text.startswith(ENV_PREFIX):
        name = text[len(ENV_PREFIX) :]
        resolved = os.environ.get(name)
        if resolved is None:
            raise ConfigError(f"{where}.{key}: environment variable {name} is not set")
        return resolved
    return text
