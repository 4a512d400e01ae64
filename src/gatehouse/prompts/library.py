"""Prompt templates stored in the gateway, and rendered there for chat requests.

The server side of :mod:`gatehouse.prompts.templates`: the same sandboxed
templates and variable checks, kept in the SQL store
(:mod:`gatehouse.store.prompt_templates`) by name and version, and rendered
when a chat request names one (``prompt: {"id", "version", "variables"}``).

A template belongs to the team of the key that created its first version (or
that key, or its organisation: ``owner``), exactly as a RAG collection does
(:mod:`gatehouse.rag.access`): other callers get the same 404 as for a name
that does not exist, administrators see every template, and names are
global, so creating a name that another owner holds is a 409. Versions are
numbered from 1 and immutable: new content is a new version, the same
content as the latest version is that version again, and a deleted version's
number is never reused.

This module imports the store and RAG's ownership rules besides core: it is
the one part of ``gatehouse.prompts`` that only a server uses, and the
package's ``__init__`` does not import it.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from gatehouse.core.errors import ConflictError, NotFoundError, ValidationFailedError
from gatehouse.core.ids import Clock
from gatehouse.core.principal import Principal
from gatehouse.core.types import ChatMessage
from gatehouse.prompts.templates import (
    JSON_TYPES,
    PromptTemplate,
    TemplateError,
    TemplateVariableError,
    Variable,
)
from gatehouse.rag.access import Owner, OwnerKind, may_access, owner_for
from gatehouse.store.prompt_templates import PromptTemplateStore, StoredTemplate

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"
VARIABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
MAX_TEXT = 100_000
MAX_VARIABLES = 100
_INSERT_ATTEMPTS = 5
_COMPILED_CACHE = 256

JsonType = Literal["string", "integer", "number", "boolean", "array", "object"]
TemplateName = Annotated[str, Field(pattern=NAME_PATTERN)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VariableSpec(_Body):
    """A declared variable in JSON: its type, whether it must be given, its default.

    ``required`` defaults to true, or to false when a ``default`` is given."""

    type: JsonType = "string"
    required: bool = True
    default: Any = None
    description: str = Field(default="", max_length=2000)

    @model_validator(mode="before")
    @classmethod
    def _optional_when_defaulted(cls, data: Any) -> Any:
        if isinstance(data, dict) and "default" in data and "required" not in data:
            return {**data, "required": False}
        return data

    def variable(self) -> Variable:
        return Variable(
            type=JSON_TYPES[self.type],
            required=self.required,
            default=self.default,
            description=self.description,
        )


def _spec(value: Any) -> Any:
    """``"integer"`` is short for ``{"type": "integer"}``."""
    return {"type": value} if isinstance(value, str) else value


class TemplateCreate(_Body):
    """A new template, or a new version of one (``POST /v1/prompts``)."""

    name: TemplateName
    template: str = Field(min_length=1, max_length=MAX_TEXT)
    system: str | None = Field(default=None, max_length=MAX_TEXT)
    variables: dict[
        Annotated[str, Field(pattern=VARIABLE_PATTERN)],
        Annotated[VariableSpec, BeforeValidator(_spec)],
    ] = Field(default_factory=dict, max_length=MAX_VARIABLES)
    description: str = Field(default="", max_length=2000)
    # Who owns the template: with the first version only (later ones keep it).
    owner: OwnerKind | None = None


def _version(value: Any) -> Any:
    """OpenAI's SDKs send a prompt's version as a string: ``"2"`` is 2."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


class PromptReference(_Body):
    """``prompt`` in a chat or Responses request: the template, its version
    (default: the latest) and the values of its variables."""

    id: TemplateName
    version: Annotated[int, Field(ge=1), BeforeValidator(_version)] | None = None
    variables: dict[str, Any] = Field(default_factory=dict)


class TemplateInfo(BaseModel):
    """A stored template version, as the API shows it."""

    object: Literal["prompt.template"] = "prompt.template"
    id: str
    version: int
    template: str
    system: str | None
    variables: dict[str, VariableSpec]
    description: str
    owner: Owner | None
    created_at: int
    created_by: str
    # Every version of this template that is not deleted, oldest first.
    versions: list[int]


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """A template rendered for a request: its messages, and which template made them."""

    name: str
    version: int
    messages: list[ChatMessage]

    def tag(self, base: str | None = None) -> str:
        """The ledger's tag for the call: ``prompt:NAME@VERSION``, after ``base``
        (``responses:prompt:...``); at most the ledger's 64 characters."""
        tag = f"prompt:{self.name}@{self.version}"
        return tag if base is None else f"{base}:{tag}"[:64]


class PromptLibrary:
    """Stored templates as one caller may see and change them."""

    def __init__(self, store: PromptTemplateStore, *, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        # Compiled templates by name and version: a version's content never changes.
        self._compiled: OrderedDict[tuple[str, int], PromptTemplate] = OrderedDict()

    async def create(self, body: TemplateCreate, *, caller: Principal) -> tuple[TemplateInfo, bool]:
        """Add a version of ``body.name``; whether one was added (the same
        content as the latest version is that version, not a new one)."""
        _check(body)
        for _ in range(_INSERT_ATTEMPTS):
            history = await self._store.history(body.name)
            live = [record for record in history if not record.deleted]
            if history:
                owner = _owner(history[-1])
                if not may_access(owner, caller):
                    raise ConflictError(
                        f"A prompt template named '{body.name}' already exists.", param="name"
                    )
                if body.owner is not None and (owner is None or owner.kind != body.owner):
                    raise ValidationFailedError(
                        "owner is set by a template's first version and cannot change.",
                        param="owner",
                    )
                if live and _same(live[-1], body):
                    return _info(live[-1], live), False
                version = history[-1].version + 1
            else:
                owner = _new_owner(caller, body.owner)
                version = 1
            record = StoredTemplate(
                name=body.name,
                version=version,
                template=body.template,
                system=body.system,
                variables={n: spec.model_dump() for n, spec in body.variables.items()},
                description=body.description,
                owner_kind=None if owner is None else owner.kind,
                owner_id=None if owner is None else owner.id,
                created_at=self._clock(),
                created_by=caller.id,
            )
            if await self._store.insert(record):
                return _info(record, [*live, record]), True
        raise ConflictError(
            f"Prompt template '{body.name}' is being changed by other writers; try again.",
            param="name",
        )

    async def listing(self, *, caller: Principal) -> list[TemplateInfo]:
        """The latest version of each template the caller may see, by name."""
        by_name: dict[str, list[StoredTemplate]] = {}
        for record in await self._store.live():
            by_name.setdefault(record.name, []).append(record)
        return [
            _info(versions[-1], versions)
            for versions in by_name.values()
            if may_access(_owner(versions[-1]), caller)
        ]

    async def get(self, name: str, version: int | None, *, caller: Principal) -> TemplateInfo:
        history = await self._visible_history(name, caller)
        live = [record for record in history if not record.deleted]
        found = _pick(live, version)
        if found is None:
            raise _not_found(name, version)
        return _info(found, live)

    async def delete(self, name: str, version: int | None, *, caller: Principal) -> list[int]:
        """Delete one version, or (``version`` None) every version; the versions deleted."""
        history = await self._visible_history(name, caller)
        live = [record for record in history if not record.deleted]
        chosen = live if version is None else [r for r in live if r.version == version]
        if not chosen:
            raise _not_found(name, version)
        deleted = await self._store.delete(chosen, actor=caller.id, at=self._clock())
        return [record.version for record in deleted]

    async def render(self, reference: PromptReference, *, caller: Principal) -> RenderedPrompt:
        """The messages ``reference`` renders to, as ``caller``: a 404 for a
        template it may not see, a 400 naming each bad variable."""
        record = await self._store.get(reference.id, reference.version)
        if record is None or record.deleted or not may_access(_owner(record), caller):
            raise _not_found(reference.id, reference.version, param="prompt.id")
        template = self._template(record)
        try:
            # In a thread of its own: a template that runs into its bounds (0.5 s
            # of work) holds that thread, not the event loop every request is
            # served on, nor the default executor's threads (DNS look-ups).
            render = functools.partial(template.messages, **reference.variables)
            messages = await asyncio.get_running_loop().run_in_executor(_renderers(), render)
        except TemplateVariableError as exc:
            raise ValidationFailedError(
                f"Prompt template '{record.name}' version {record.version}: "
                + "; ".join(exc.problems)
                + ".",
                param="prompt.variables",
            ) from None
        except TemplateError as exc:
            raise ValidationFailedError(f"Could not render: {exc}.", param="prompt") from None
        return RenderedPrompt(record.name, record.version, messages)

    async def _visible_history(self, name: str, caller: Principal) -> list[StoredTemplate]:
        history = await self._store.history(name)
        if not history or not may_access(_owner(history[-1]), caller):
            raise _not_found(name, None)
        return history

    def _template(self, record: StoredTemplate) -> PromptTemplate:
        key = (record.name, record.version)
        template = self._compiled.get(key)
        if template is None:
            template = _compile(record.name, record.version, record)
            self._compiled[key] = template
            if len(self._compiled) > _COMPILED_CACHE:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        return template


@functools.cache
def _renderers() -> ThreadPoolExecutor:
    """The threads stored templates render in, made on first use; two, since
    rendering holds the GIL: more would only take turns."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="gatehouse-template")


def _check(body: TemplateCreate) -> None:
    """400 naming what is wrong: a default of the wrong type, a template that
    does not parse, uses an undeclared variable or reaches Python internals."""
    for name, spec in body.variables.items():
        if spec.default is not None and (problem := spec.variable().check(name, spec.default)):
            raise ValidationFailedError(f"default of {problem}", param=f"variables.{name}.default")
    try:
        _compile(body.name, 1, body, system=None)
    except TemplateError as exc:
        raise ValidationFailedError(str(exc), param="template") from None
    if body.system is not None:
        try:
            _compile(body.name, 1, body)
        except TemplateError as exc:
            raise ValidationFailedError(str(exc), param="system") from None


def _compile(
    name: str, version: int, source: StoredTemplate | TemplateCreate, **override: Any
) -> PromptTemplate:
    variables = {
        key: VariableSpec.model_validate(_spec(spec)).variable()
        for key, spec in source.variables.items()
    }
    fields: dict[str, Any] = {"system": source.system, **override}
    return PromptTemplate(
        name,
        source.template,
        version=version,
        variables=variables,
        description=source.description,
        **fields,
    )


def _same(record: StoredTemplate, body: TemplateCreate) -> bool:
    return (
        record.template == body.template
        and record.system == body.system
        and record.description == body.description
        and record.variables == {n: spec.model_dump() for n, spec in body.variables.items()}
    )


def _owner(record: StoredTemplate) -> Owner | None:
    if record.owner_kind is None or record.owner_id is None:
        return None
    return Owner.model_validate({"kind": record.owner_kind, "id": record.owner_id})


def _new_owner(caller: Principal, kind: OwnerKind | None) -> Owner | None:
    try:
        return owner_for(caller, kind)
    except ValidationFailedError:
        raise ValidationFailedError(
            f"This credential has no {kind} to own the template.", param="owner"
        ) from None


def _pick(live: list[StoredTemplate], version: int | None) -> StoredTemplate | None:
    if version is None:
        return live[-1] if live else None
    return next((record for record in live if record.version == version), None)


def _info(record: StoredTemplate, live: list[StoredTemplate]) -> TemplateInfo:
    return TemplateInfo(
        id=record.name,
        version=record.version,
        template=record.template,
        system=record.system,
        variables={n: VariableSpec.model_validate(v) for n, v in record.variables.items()},
        description=record.description,
        owner=_owner(record),
        created_at=int(record.created_at),
        created_by=record.created_by,
        versions=[r.version for r in live],
    )


def _not_found(name: str, version: int | None, *, param: str = "id") -> NotFoundError:
    which = f"Prompt template '{name}'" + ("" if version is None else f" version {version}")
    return NotFoundError(f"{which} not found.", param=param)
