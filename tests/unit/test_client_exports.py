"""The public surface of gatehouse.client and gatehouse.prompts is deliberate (as httpx's)."""

from __future__ import annotations

import types

import pytest

import gatehouse
import gatehouse.client
import gatehouse.prompts


@pytest.mark.parametrize("module", [gatehouse.client, gatehouse.prompts])
def test_all_names_exactly_the_public_members(module: types.ModuleType) -> None:
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(module.__all__) == public


def test_the_top_level_offers_the_clients() -> None:
    assert gatehouse.Client is gatehouse.client.Client
    assert gatehouse.AsyncClient is gatehouse.client.AsyncClient
    with pytest.raises(AttributeError):
        _ = gatehouse.NoSuchThing  # type: ignore[attr-defined]
