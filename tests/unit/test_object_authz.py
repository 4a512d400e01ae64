"""Authorization on every object (OWASP API1), driven by the route table.

Two teams share one server. Team beta owns one of everything a caller can
own (a key, a RAG collection and document, a prompt template, a stored
response, usage in the request log); team alpha's key holds every scope but
``admin``. For every route of the app that names an object in its path or
lists objects, alpha is refused:

- ``admin`` routes (keys, teams, users, orgs, guard policies, spend, ledger,
  request log, audit, privacy export and erasure): 403, whatever the path
  names, and the same answer for beta's objects as for ones that do not
  exist;
- routes of owned objects (collections, documents, templates, stored
  responses): 404, the same answer as for an object that does not exist, so
  existence does not leak; listings show none of beta's;
- bodies that name another team's object (``prompt`` in chat,
  ``previous_response_id``): 404 as well.

Afterwards beta's objects are all intact. A route added later with a path
parameter or a listing fails :func:`test_every_object_route_is_classified`
until it is given an owner here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatehouse.core.principal import ALL_SCOPES
from gatehouse.server.authz import AUTHENTICATED, PUBLIC
from gatehouse.server.routes.table import RouteSpec

from .governed import Governed, governed_app
from .rag_fakes import BagOfWords
from .test_route_authz import _api_specs

NON_ADMIN = sorted(ALL_SCOPES - {"admin"})
PRICING = {
    "models": {
        "test/echo": {"input_cost_per_token": 1, "output_cost_per_token": 2},
        "test/bow": {"input_cost_per_token": 0.001},
    }
}
PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")
# Routes whose objects belong to an owner (a team, a key or an organisation):
# another owner gets 404 on each, as for an object that does not exist.
OWNED_PREFIXES = ("/v1/rag/collections", "/v1/prompts", "/v1/responses/{")
# Not owned objects: the served models (from the configuration; a key limited
# to some models sees only those: tests/integration/test_model_listing_authz.py)
# and the metrics (public, counters only).
NOT_OWNED = {"/v1/models", "/v1/models/{model:path}", "/metrics"}
# What a body needs so that the route reaches its object (not a 400 first).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/rag/collections/{collection}/documents"): {
        "documents": [{"id": "x", "text": "Alpha writes into beta's collection."}]
    },
    ("POST", "/v1/rag/collections/{collection}/search"): {"query": "cats"},
    ("POST", "/v1/rag/collections/{collection}/answer"): {"query": "Do cats purr?"},
}


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@dataclass
class Beta:
    """Team beta's objects, by the path parameter that names each."""

    key: str
    params: dict[str, str]


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    async for governed in governed_app(tmp_path, providers=[BagOfWords()], pricing=PRICING):
        yield governed


async def _beta(gov: Governed) -> Beta:
    created = await gov.admin(
        "POST", "/admin/keys", {"name": "beta", "team": "beta", "user": "bob", "scopes": NON_ADMIN}
    )
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["id"]
    assert (await gov.admin("PUT", "/admin/teams/beta", {"limits": {"rpm": 100}})).status_code in {
        200,
        201,
    }
    assert (
        await gov.admin("PUT", "/admin/keys/" + key_id + "/guard", {"entities": {"EMAIL": "mask"}})
    ).is_success
    calls: list[tuple[str, dict[str, Any]]] = [
        ("/v1/rag/collections", {"name": "beta-kb", "embedding_model": "test/bow"}),
        (
            "/v1/rag/collections/beta-kb/documents",
            {"documents": [{"id": "doc-1", "text": "Cats purr when they are content."}]},
        ),
        (
            "/v1/prompts",
            {"name": "beta-prompt", "template": "Say {{ text }}", "variables": {"text": "string"}},
        ),
        ("/v1/responses", {"model": "test/echo", "input": "beta's stored answer"}),
    ]
    answers = []
    for path, body in calls:
        response = await gov.http.post(path, json=body, headers=_auth(key))
        assert response.is_success, (path, response.text)
        answers.append(response)
    await gov.governance.shipper.drain()
    logged = await gov.admin("GET", "/admin/requests?team=beta")
    return Beta(
        key=key,
        params={
            "id": key_id,
            "collection": "beta-kb",
            "document": "doc-1",
            "name": "beta-prompt",
            "version": "1",
            "response_id": answers[-1].json()["id"],
            "request_id": logged.json()["events"][0]["request_id"],
            "user": "bob",
        },
    )


def _path(spec: RouteSpec, values: dict[str, str]) -> str:
    return PARAM.sub(lambda m: values[m.group(1)], spec.path)


def _is_object_route(spec: RouteSpec) -> bool:
    listing = spec.method == "GET" and spec.scope not in {PUBLIC}
    return "{" in spec.path or listing


def _owned(spec: RouteSpec) -> bool:
    return spec.path.startswith(OWNED_PREFIXES)


def _object_routes(gov: Governed) -> list[RouteSpec]:
    return [s for s in _api_specs(gov) if _is_object_route(s)]


def test_every_object_route_is_classified(gov: Governed) -> None:
    """Every route naming or listing objects is admin-only or of owned objects."""
    for spec in _object_routes(gov):
        if spec.scope == "admin" or _owned(spec) or spec.path in NOT_OWNED:
            continue
        raise AssertionError(f"{spec.method} {spec.path}: whose objects? Classify it here.")
    for spec in _object_routes(gov):
        if _owned(spec):
            assert spec.scope not in {PUBLIC, AUTHENTICATED}, spec.path
    assert next(s for s in _api_specs(gov) if s.path == "/v1/models").scope == AUTHENTICATED


async def _as(gov: Governed, key: str, spec: RouteSpec, values: dict[str, str]) -> httpx.Response:
    body = BODIES.get((spec.method, spec.path), {})
    return await gov.http.request(spec.method, _path(spec, values), json=body, headers=_auth(key))


async def _admin_routes_refused(
    gov: Governed, key: str, beta: Beta
) -> AsyncIterator[tuple[RouteSpec, dict[str, str], httpx.Response]]:
    """Each admin route called by ``key`` on beta's objects: asserted 403."""
    for spec in _api_specs(gov):
        if spec.scope != "admin":
            continue
        values = {**beta.params, "id": beta.params["id"] if "keys" in spec.path else "beta"}
        refused = await _as(gov, key, spec, values)
        assert refused.status_code == 403, (spec.method, spec.path, refused.text)
        yield spec, values, refused


def _absent(values: dict[str, str]) -> dict[str, str]:
    return {name: ("9" if name == "version" else f"absent-{name}") for name in values}


async def test_a_team_key_without_admin_is_refused_on_every_admin_route(gov: Governed) -> None:
    beta = await _beta(gov)
    alpha = await gov.new_key(name="alpha", team="alpha", scopes=NON_ADMIN)
    async for spec, values, refused in _admin_routes_refused(gov, alpha, beta):
        if "{" in spec.path:
            missing = await _as(gov, alpha, spec, _absent(values))
            assert missing.status_code == 403
            assert missing.json() == refused.json(), spec.path


async def test_another_teams_objects_are_404_on_every_owned_route(gov: Governed) -> None:
    beta = await _beta(gov)
    alpha = await gov.new_key(name="alpha", team="alpha", scopes=NON_ADMIN)
    owned = [s for s in _object_routes(gov) if _owned(s) and "{" in s.path]
    assert len(owned) >= 12, [s.path for s in owned]
    # Deletions last, so each route meets beta's objects whole.
    for spec in sorted(owned, key=lambda s: s.method == "DELETE"):
        refused = await _as(gov, alpha, spec, beta.params)
        assert refused.status_code == 404, (spec.method, spec.path, refused.text)
        missing = await _as(gov, alpha, spec, _absent(beta.params))
        assert missing.status_code == 404, (spec.method, spec.path, missing.text)
        assert refused.json()["error"]["code"] == missing.json()["error"]["code"]
        assert refused.json()["error"].get("param") == missing.json()["error"].get("param")
        # The message names what was asked for, and nothing more.
        assert _unnamed(refused, beta.params) == _unnamed(missing, _absent(beta.params))
    # Listings show none of beta's objects.
    for spec in _object_routes(gov):
        if _owned(spec) and "{" not in spec.path:
            listed = await _as(gov, alpha, spec, {})
            assert listed.status_code == 200, spec.path
            for value in (beta.params["collection"], beta.params["name"]):
                assert value not in listed.text, spec.path
    await _beta_is_intact(gov, beta)


def _unnamed(response: httpx.Response, values: dict[str, str]) -> str:
    message = str(response.json()["error"]["message"])
    for name, value in sorted(values.items(), key=lambda item: -len(item[1])):
        message = message.replace(value, f"<{name}>")
    return message


async def test_bodies_naming_another_teams_objects_are_404(gov: Governed) -> None:
    beta = await _beta(gov)
    alpha = await gov.new_key(name="alpha", team="alpha", scopes=NON_ADMIN)
    bodies = [
        (
            "/v1/chat/completions",
            {
                "model": "test/echo",
                "messages": [],
                "prompt": {"id": beta.params["name"], "variables": {"text": "x"}},
            },
        ),
        (
            "/v1/responses",
            {
                "model": "test/echo",
                "input": "continue beta's conversation",
                "previous_response_id": beta.params["response_id"],
            },
        ),
    ]
    for path, body in bodies:
        refused = await gov.http.post(path, json=body, headers=_auth(alpha))
        assert refused.status_code == 404, (path, refused.text)
        assert refused.json()["error"]["code"] == "not_found"
    await _beta_is_intact(gov, beta)


async def _beta_is_intact(gov: Governed, beta: Beta) -> None:
    p = beta.params
    for path in (
        f"/v1/rag/collections/{p['collection']}/documents/{p['document']}",
        f"/v1/prompts/{p['name']}/versions/{p['version']}",
        f"/v1/responses/{p['response_id']}",
    ):
        kept = await gov.http.get(path, headers=_auth(beta.key))
        assert kept.status_code == 200, (path, kept.text)
    documents = await gov.http.get(
        f"/v1/rag/collections/{p['collection']}/documents", headers=_auth(beta.key)
    )
    assert [d["id"] for d in documents.json()["data"]] == [p["document"]]
    record = (await gov.admin("GET", f"/admin/keys/{p['id']}")).json()
    assert record["revoked_at"] is None


async def test_a_teams_admin_key_reaches_no_other_team(gov: Governed) -> None:
    """A key with ``admin`` that belongs to a team is the dashboard's team admin:
    the admin API (which reaches every team) refuses it, and it sees only its
    own team's collections and templates. Found in this review: it was a full
    administrator on every ``/admin`` route and saw every team's objects."""
    beta = await _beta(gov)
    team_admin = await gov.new_key(name="alpha-admin", team="alpha", scopes=sorted(ALL_SCOPES))
    async for _spec, _values, refused in _admin_routes_refused(gov, team_admin, beta):
        assert "team 'alpha'" in refused.json()["error"]["message"]
    for spec in _object_routes(gov):
        if _owned(spec) and spec.scope != "admin":
            answer = await _as(gov, team_admin, spec, beta.params)
            expected = 200 if "{" not in spec.path else 404
            assert answer.status_code == expected, (spec.method, spec.path, answer.text)
            if expected == 200:
                assert beta.params["collection"] not in answer.text, spec.path
                assert beta.params["name"] not in answer.text, spec.path
    # An administrator without a team still sees and manages everything.
    assert (await gov.admin("GET", "/admin/keys")).status_code == 200
    every = await gov.admin("GET", "/v1/rag/collections")
    assert [c["name"] for c in every.json()["data"]] == [beta.params["collection"]]
    await _beta_is_intact(gov, beta)
