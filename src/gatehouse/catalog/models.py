"""The model catalog: prices, context windows and capabilities, from YAML.

The catalog ships as ``gatehouse/catalog/data/models.yaml`` (package data);
``catalog.path`` in config names a file of the same shape whose entries and
tasks replace the shipped ones by name (:func:`load_catalog`). Prices in the
file are USD per million tokens, as providers publish them;
:meth:`CatalogPrices.price` turns them into the per-token
:class:`~gatehouse.core.config.Price` that the pricing table charges.

A configured deployment finds its entry by its ``catalog_model`` or its
upstream ``model`` (:meth:`Catalog.find`): the name, one of the entry's
aliases, or either without a LiteLLM-style ``provider/`` prefix.

A malformed file is a :class:`~gatehouse.core.errors.ConfigError` naming the
file and the entry (``models.gpt-4o.prices.input: ...``).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gatehouse.core.config import Price
from gatehouse.core.errors import ConfigError

__all__ = [
    "Catalog",
    "CatalogEntry",
    "CatalogPrices",
    "Modalities",
    "TaskProfile",
    "load_catalog",
    "shipped_catalog",
]

PER_MILLION = 1_000_000
Modality = Literal["text", "image", "audio", "video", "embedding"]
Requirement = Literal["tools", "structured_output", "reasoning", "image_input", "audio_input"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CatalogPrices(_Strict):
    """USD per million tokens. Unset cache prices are the input price, unset
    reasoning the output price (as :class:`~gatehouse.core.config.Price`)."""

    input: float = Field(default=0.0, ge=0.0)
    output: float = Field(default=0.0, ge=0.0)
    cached_input: float | None = Field(default=None, ge=0.0)  # cache reads
    cache_write: float | None = Field(default=None, ge=0.0)
    reasoning: float | None = Field(default=None, ge=0.0)

    def price(self) -> Price:
        """The per-token price the gateway charges."""

        def per_token(value: float | None) -> float | None:
            return None if value is None else value / PER_MILLION

        return Price(
            input_cost_per_token=self.input / PER_MILLION,
            output_cost_per_token=self.output / PER_MILLION,
            cache_read_input_token_cost=per_token(self.cached_input),
            cache_creation_input_token_cost=per_token(self.cache_write),
            output_cost_per_reasoning_token=per_token(self.reasoning),
        )


def _text() -> list[Modality]:
    return ["text"]


class Modalities(_Strict):
    input: list[Modality] = Field(default_factory=_text, min_length=1)
    output: list[Modality] = Field(default_factory=_text, min_length=1)


class CatalogEntry(_Strict):
    """One model as its provider sells it."""

    provider: str = Field(min_length=1)  # the provider family: openai, anthropic, gemini, local
    mode: Literal["chat", "embedding", "rerank"] = "chat"
    aliases: list[str] = Field(default_factory=list)
    prices: CatalogPrices
    context_window: int = Field(ge=1)
    max_output_tokens: int = Field(ge=0)
    modalities: Modalities = Modalities()
    tools: bool = False
    structured_output: bool = False
    reasoning: bool = False

    @model_validator(mode="after")
    def _output_fits(self) -> CatalogEntry:
        if self.max_output_tokens > self.context_window:
            raise ValueError(
                f"max_output_tokens ({self.max_output_tokens}) exceeds "
                f"context_window ({self.context_window})"
            )
        return self

    def supports(self, requirement: Requirement) -> bool:
        if requirement == "image_input":
            return "image" in self.modalities.input
        if requirement == "audio_input":
            return "audio" in self.modalities.input
        return bool(getattr(self, requirement))


class TaskProfile(_Strict):
    """A typical request of a task: what it sends and gets, and what it needs."""

    description: str = ""
    input_tokens: int = Field(ge=1)
    output_tokens: int = Field(ge=1)
    requires: list[Requirement] = Field(default_factory=list)
    eval_suite: str | None = None  # the capability suite whose pass rate scores a model


class Catalog(_Strict):
    """Every catalog entry and task profile, by name."""

    as_of: str | None = None
    models: dict[str, CatalogEntry] = Field(default_factory=dict)
    tasks: dict[str, TaskProfile] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names_are_unique(self) -> Catalog:
        owner: dict[str, str] = {}
        for name, entry in self.models.items():
            for key in (name, *entry.aliases):
                if key in owner and owner[key] != name:
                    raise ValueError(f"models.{name}: alias {key!r} is already {owner[key]!r}")
                owner[key] = name
        return self

    def find(self, model: str) -> tuple[str, CatalogEntry] | None:
        """The entry (with its name) for an upstream model name, or None."""
        index = self._index()
        for key in (model, model.split("/", 1)[1] if "/" in model else None):
            if key is not None and key in index:
                name = index[key]
                return name, self.models[name]
        return None

    def _index(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for name, entry in self.models.items():
            found[name] = name
            for alias in entry.aliases:
                found.setdefault(alias, name)
        return found

    def overlay(self, other: Catalog) -> Catalog:
        """This catalog with ``other``'s entries and tasks replacing these by name
        (raises ValueError when an entry of ``other`` claims another's alias)."""
        return Catalog.model_validate(
            {
                "as_of": other.as_of or self.as_of,
                "models": {**self.models, **other.models},
                "tasks": {**self.tasks, **other.tasks},
            }
        )


def parse_catalog(text: str, source: str) -> Catalog:
    """A catalog from YAML text; errors name ``source`` and the entry."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with 'models' and 'tasks'")
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}: {where or 'catalog'}: {error['msg']}{more}") from None


@cache
def shipped_catalog() -> Catalog:
    """The catalog that ships with gatehouse (read once)."""
    text = resources.files("gatehouse.catalog").joinpath("data/models.yaml").read_text("utf-8")
    return parse_catalog(text, "gatehouse/catalog/data/models.yaml")


def load_catalog(path: Path | None = None) -> Catalog:
    """The shipped catalog, overlaid with the file at ``path`` when given."""
    catalog = shipped_catalog()
    if path is None:
        return catalog
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"catalog.path: cannot read {path}: {exc.strerror}") from None
    try:
        return catalog.overlay(parse_catalog(text, str(path)))
    except ValidationError as exc:
        raise ConfigError(f"{path}: {exc.errors()[0]['msg']}") from None
