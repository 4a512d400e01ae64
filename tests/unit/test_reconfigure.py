"""Gateway.reconfigure: all or nothing, and unchanged model groups kept as they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gatehouse.core.config import Settings
from gatehouse.core.errors import ConfigError
from gatehouse.gateway import build_gateway
from gatehouse.gateway.wiring import changed_sections


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    group = {
        "name": "up",
        "deployments": [
            {"provider": "openai_compat", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
        ],
    }
    data: dict[str, Any] = {
        "data_dir": str(tmp_path),
        "local": {"chat": {"enabled": False}, "embeddings": {"enabled": False}},
        "aliases": {},
        "models": [group],
        **extra,
    }
    return Settings.model_validate(data)


def _second() -> dict[str, Any]:
    return {
        "name": "up2",
        "deployments": [
            {"provider": "openai_compat", "model": "n", "base_url": "http://127.0.0.1:9/v1"}
        ],
    }


async def test_an_unchanged_group_is_kept_and_a_new_one_served(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    gateway = build_gateway(settings, started_at=0)
    before = gateway.registry.get("up").group
    new = _settings(tmp_path, models=[*[g.model_dump() for g in settings.models], _second()])
    await gateway.reconfigure(new)
    assert gateway.registry.get("up").group is before
    assert "up2" in gateway.registry
    await gateway.stop()


async def test_a_configuration_that_cannot_be_built_changes_nothing(tmp_path: Path) -> None:
    gateway = build_gateway(_settings(tmp_path), started_at=0)
    registry, router, handle = gateway.registry, gateway.router, gateway._handle
    unknown = _second()
    unknown["deployments"][0]["provider"] = "no-such-provider"
    with pytest.raises(ConfigError):
        await gateway.reconfigure(_settings(tmp_path, models=[unknown]))
    assert (gateway.registry, gateway.router, gateway._handle) == (registry, router, handle)
    await gateway.stop()


def test_changed_sections_separate_what_a_reload_applies(tmp_path: Path) -> None:
    current = _settings(tmp_path)
    new = _settings(tmp_path, limits={"models": {"up": {"rpm": 5}}}, server={"port": 9000})
    assert changed_sections(current, new) == (["limits"], ["server"])
    assert changed_sections(current, current) == ([], [])
