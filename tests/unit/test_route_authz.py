"""Every route in the table declares its scope, and the one check refuses the rest.

The test walks the whole route table, so a route added later is covered
without a line here: an unauthenticated call is 401 and a credential without
the route's scope is 403, before any endpoint code runs.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gatehouse.core.principal import ALL_SCOPES
from gatehouse.server.authz import AUTHENTICATED, PUBLIC
from gatehouse.server.routes.table import RouteSpec

from .governed import Governed, governed_app

PUBLIC_PATHS = {"/healthz", "/readyz", "/metrics", "/openapi.json"}
# The dashboard's login pages (a key, single sign-on) and assets; its other
# pages need a session, and tests/unit/test_ui_session.py walks them (redirect
# to login, CSRF, roles).
UI_PUBLIC_PREFIXES = ("/ui/login", "/ui/static/", "/ui/oidc/")
UI_SCOPES = {"ui:viewer", "ui:team_admin", "ui:admin"}


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    async for governed in governed_app(tmp_path):
        yield governed


def _specs(gov: Governed) -> list[RouteSpec]:
    from gatehouse.server.routes import (
        admin,
        anthropic,
        config_reload,
        deployments,
        health,
        observability,
        privacy,
        prompts,
        rag,
        rerank,
        responses,
        tokens,
    )
    from gatehouse.server.routes import openai as openai_routes
    from gatehouse.ui import routes as ui_routes

    specs: list[RouteSpec] = []
    modules = (openai_routes, anthropic, responses, deployments, health, observability, admin, rag)
    for module in (*modules, config_reload, tokens, rerank, privacy, prompts, ui_routes):
        specs.extend(module.ROUTES)
    return specs


def _api_specs(gov: Governed) -> list[RouteSpec]:
    """The routes a bearer credential is checked on (not the dashboard's)."""
    return [s for s in _specs(gov) if s.tag != "ui"]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_route_of_the_app_is_in_the_walked_table(gov: Governed) -> None:
    app = gov.http._transport.app  # type: ignore[attr-defined]
    served = {(m, r.path) for r in app.routes for m in r.methods or () if m != "HEAD"}
    walked = {(s.method, s.path) for s in _specs(gov)} | {("GET", "/openapi.json")}
    assert served == walked


def test_only_probes_metrics_and_the_schema_are_public(gov: Governed) -> None:
    public = {s.path for s in _specs(gov) if s.scope == PUBLIC and s.tag != "ui"}
    assert public == PUBLIC_PATHS - {"/openapi.json"}
    ui_public = {s.path for s in _specs(gov) if s.scope == PUBLIC and s.tag == "ui"}
    assert "/ui/login" in ui_public
    for path in ui_public:
        assert path.startswith(UI_PUBLIC_PREFIXES), path
    for spec in _specs(gov):
        allowed = UI_SCOPES if spec.tag == "ui" else ALL_SCOPES
        assert spec.scope in {PUBLIC, AUTHENTICATED} | allowed, spec.path


async def test_every_route_refuses_a_caller_without_credentials(gov: Governed) -> None:
    for spec in _api_specs(gov):
        response = await gov.http.request(spec.method, _concrete(spec.path), json={})
        if spec.scope == PUBLIC:
            assert response.status_code != 401, spec.path
            continue
        assert response.status_code == 401, (spec.method, spec.path, response.text)
        if not spec.path.startswith("/v1/messages"):  # answers in the Anthropic shape
            assert response.json()["error"]["code"] == "invalid_api_key"


async def test_every_route_refuses_a_key_without_its_scope(gov: Governed) -> None:
    for spec in _api_specs(gov):
        if spec.scope in {PUBLIC, AUTHENTICATED}:
            continue
        others = sorted(ALL_SCOPES - {spec.scope})
        key = await gov.new_key(name="underscoped", scopes=others)
        response = await gov.http.request(
            spec.method,
            _concrete(spec.path),
            json={},
            headers={"authorization": f"Bearer {key}"},
        )
        assert response.status_code == 403, (spec.method, spec.path, response.text)
        assert spec.scope in response.text


async def test_the_anthropic_route_refuses_in_the_anthropic_shape(gov: Governed) -> None:
    response = await gov.http.post("/v1/messages", json={})
    assert response.status_code == 401
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "authentication_error"
