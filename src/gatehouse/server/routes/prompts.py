"""Stored prompt templates under ``/v1/prompts``, and ``prompt`` in chat requests.

Thin: parse, call the :class:`~gatehouse.prompts.library.PromptLibrary` as
the caller, shape the response. Reading needs ``prompts:read``, creating and
deleting ``prompts:write``; which templates a caller may touch is the
library's business (its team's, or every one for administrators). The
library is built on first use and kept on the app.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.errors import NotFoundError, ValidationFailedError
from gatehouse.core.principal import Principal
from gatehouse.core.types import ChatCompletionRequest, ChatMessage
from gatehouse.core.validation import validation_error
from gatehouse.prompts.library import (
    PromptLibrary,
    PromptReference,
    RenderedPrompt,
    TemplateCreate,
    TemplateInfo,
)
from gatehouse.server.http import JSONResponse, parse_body
from gatehouse.server.routes.table import RouteSpec
from gatehouse.store.prompt_templates import PromptTemplateStore


def prompt_library(state: State) -> PromptLibrary:
    """The app's template library, on its governance database, made on first use."""
    found: PromptLibrary | None = getattr(state, "prompt_library", None)
    if found is None:
        governance = state.gateway.governance
        if governance is None:
            raise NotFoundError("Stored prompt templates need the gateway's database.")
        found = PromptLibrary(PromptTemplateStore(governance.database), clock=time.time)
        state.prompt_library = found
    return found


class PromptedChatCompletionRequest(ChatCompletionRequest):
    """A chat completion request as the OpenAPI document shows it: ``prompt``
    names a stored template whose messages come first; with it, ``messages``
    may be empty or absent (without it, at least one is required). The route
    renders ``prompt`` and then validates a plain :class:`ChatCompletionRequest`."""

    messages: list[ChatMessage] = Field(default_factory=list)
    prompt: PromptReference | None = None


class _Prompted(BaseModel):
    # Validates ``prompt`` where it stands, so a bad field is named ``prompt.id``.
    prompt: PromptReference


async def render_prompt(
    state: State, body: dict[str, Any], caller: Principal
) -> RenderedPrompt | None:
    """Render a chat request's ``prompt`` (taken out of ``body``) as ``caller``,
    and put its messages before the request's own ``messages``."""
    raw = body.pop("prompt")
    if raw is None:
        return None
    rendered = await render_reference(state, raw, caller)
    own = body.get("messages", [])
    if isinstance(own, list):  # anything else: the request's validation names it
        body["messages"] = [m.model_dump(exclude_none=True) for m in rendered.messages] + own
    return rendered


async def render_reference(state: State, raw: Any, caller: Principal) -> RenderedPrompt:
    """Render a request's ``prompt`` field as ``caller``: a 400 naming a bad
    field or variable, a 404 for a template the caller may not see."""
    try:
        reference = _Prompted.model_validate({"prompt": raw}).prompt
    except ValidationError as exc:
        raise validation_error(exc) from None
    return await prompt_library(state).render(reference, caller=caller)


def _caller(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


def _version(request: Request) -> int:
    raw: str = request.path_params["version"]
    if not raw.isdigit() or int(raw) < 1:
        raise ValidationFailedError("version must be an integer of 1 or more.", param="version")
    return int(raw)


async def create_template(request: Request) -> Response:
    body = await parse_body(request, TemplateCreate)
    info, created = await prompt_library(request.app.state).create(body, caller=_caller(request))
    return JSONResponse(info, status_code=201 if created else 200)


async def list_templates(request: Request) -> Response:
    items = await prompt_library(request.app.state).listing(caller=_caller(request))
    return JSONResponse({"object": "list", "data": [item.model_dump() for item in items]})


async def get_latest(request: Request) -> Response:
    library = prompt_library(request.app.state)
    name = request.path_params["name"]
    return JSONResponse(await library.get(name, None, caller=_caller(request)))


async def get_version(request: Request) -> Response:
    library = prompt_library(request.app.state)
    name = request.path_params["name"]
    return JSONResponse(await library.get(name, _version(request), caller=_caller(request)))


async def delete_template(request: Request) -> Response:
    return await _delete(request, None)


async def delete_version(request: Request) -> Response:
    return await _delete(request, _version(request))


async def _delete(request: Request, version: int | None) -> Response:
    name = request.path_params["name"]
    library = prompt_library(request.app.state)
    versions = await library.delete(name, version, caller=_caller(request))
    return JSONResponse(
        {"object": "prompt.template.deleted", "id": name, "versions": versions, "deleted": True}
    )


def _spec(method: str, path: str, endpoint: Any, summary: str, **extra: Any) -> RouteSpec:
    return RouteSpec(method, path, endpoint, summary=summary, tag="prompts", **extra)


ROUTES = [
    _spec(
        "POST",
        "/v1/prompts",
        create_template,
        "Create a prompt template, or its next version (the same content: the latest version)",
        request_model=TemplateCreate,
        response_model=TemplateInfo,
        scope="prompts:write",
    ),
    _spec(
        "GET",
        "/v1/prompts",
        list_templates,
        "List the prompt templates the caller may use (latest version of each)",
        scope="prompts:read",
    ),
    _spec(
        "GET",
        "/v1/prompts/{name}",
        get_latest,
        "Get a prompt template's latest version",
        response_model=TemplateInfo,
        scope="prompts:read",
    ),
    _spec(
        "GET",
        "/v1/prompts/{name}/versions/{version}",
        get_version,
        "Get one version of a prompt template",
        response_model=TemplateInfo,
        scope="prompts:read",
    ),
    _spec(
        "DELETE",
        "/v1/prompts/{name}",
        delete_template,
        "Delete every version of a prompt template (the name stays its owner's)",
        scope="prompts:write",
    ),
    _spec(
        "DELETE",
        "/v1/prompts/{name}/versions/{version}",
        delete_version,
        "Delete one version of a prompt template (its number is never reused)",
        scope="prompts:write",
    ),
]
