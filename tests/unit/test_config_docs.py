"""docs/configuration.md documents every setting: the reference cannot drift from the code.

The reference is the YAML block under "## Reference". Each field of
:class:`~gatehouse.core.config.Settings`, walked recursively, must appear in it
by its dotted key: sections are walked into, a list of sections
(``models[].deployments[]``) through its example item, and a mapping of names
to sections (``pricing.models``, ``guard.teams``) counts as one setting, since
its keys are the user's own names.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from gatehouse.core.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
# Filled by the LiteLLM config loader, never set by a user.
INTERNAL = {"unsupported_keys"}


def _section(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds, directly, optionally or as list items."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _section(arg)
            if found is not None:
                return found
    return None


def setting_keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[str]:
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        section = _section(field.annotation)
        if section is not None:
            yield from setting_keys(section, path)
        else:
            yield ".".join(path)


def documented_keys(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            # Keys are matched in any case: guard.entities documents EMAIL for email.
            path = (*prefix, str(key).lower())
            yield ".".join(path)
            yield from documented_keys(value, path)
    elif isinstance(node, list):
        for item in node:
            yield from documented_keys(item, prefix)


def reference() -> Any:
    found = re.search(r"^## Reference\n\n```yaml\n(.*?)^```", DOC.read_text(), re.M | re.S)
    assert found, "docs/configuration.md has no ```yaml block under ## Reference"
    return yaml.safe_load(found.group(1))


def test_every_setting_is_in_the_reference() -> None:
    documented = set(documented_keys(reference()))
    missing = [key for key in setting_keys(Settings) if key not in documented | INTERNAL]
    assert not missing, f"settings missing from docs/configuration.md's reference: {missing}"


def test_the_reference_names_no_setting_that_does_not_exist() -> None:
    """The other direction: a removed or renamed setting leaves the reference too."""
    keys = set(setting_keys(Settings))
    prefixes = {".".join(key.split(".")[:n]) for key in keys for n in range(1, key.count(".") + 2)}
    maps = {key for key in keys if _is_mapping_field(key)}
    stale = [
        key
        for key in documented_keys(reference())
        if key not in prefixes and not any(key.startswith(f"{m}.") for m in maps)
    ]
    assert not stale, f"docs/configuration.md's reference names unknown settings: {stale}"


def _is_mapping_field(dotted: str) -> bool:
    model: type[BaseModel] = Settings
    *parents, name = dotted.split(".")
    for part in parents:
        section = _section(model.model_fields[part].annotation)
        assert section is not None
        model = section
    return typing.get_origin(model.model_fields[name].annotation) is dict


def test_the_walk_finds_nested_and_listed_settings() -> None:
    keys = set(setting_keys(Settings))
    assert {"server.port", "models.deployments.timeout.first_token", "pricing.models"} <= keys
    assert "router.breaker" not in keys  # a section, not a setting
