"""Mass assignment (OWASP API3): a body cannot set what the server owns.

Every write route's body is validated against a model that forbids unknown
fields, so a body naming a server-owned field (an id, the owner, spend, the
creator, a key's digest, an admin flag) is a 400 naming that field, never
silently stored. The models of the OpenAI- and Anthropic-compatible
inference routes accept unknown fields (provider options pass through), so
for those the test shows that a body naming another team, key or user
changes nothing the ledger attributes: the call is the caller's, at its price.

A write route added later fails :func:`test_every_write_route_is_classified`
until it has a body here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gatehouse.core.principal import ALL_SCOPES
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
C = "/v1/rag/collections/{collection}"
# A valid body for every write route whose model is strict.
STRICT_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/admin/keys"): {"name": "made"},
    ("PATCH", "/admin/keys/{id}"): {"name": "renamed"},
    ("PUT", "/admin/orgs/{id}"): {"limits": {"rpm": 5}},
    ("PUT", "/admin/teams/{id}"): {"limits": {"rpm": 5}},
    ("PUT", "/admin/users/{id}"): {"limits": {"rpm": 5}},
    ("PUT", "/admin/keys/{id}/guard"): {"entities": {"EMAIL": "mask"}},
    ("PUT", "/admin/teams/{id}/guard"): {"entities": {"EMAIL": "mask"}},
    ("POST", "/v1/rag/collections"): {"name": "made-kb", "embedding_model": "test/bow"},
    ("POST", C + "/documents"): {"documents": [{"id": "d", "text": "Cats purr."}]},
    ("POST", C + "/search"): {"query": "cats"},
    ("POST", C + "/answer"): {"query": "Do cats purr?"},
    ("POST", "/v1/prompts"): {"name": "made-prompt", "template": "Hello."},
    ("POST", "/v1/responses"): {"model": "test/echo", "input": "hello"},
}
# Inference routes of the OpenAI and Anthropic APIs: unknown fields pass to
# the provider (test_inference_bodies_cannot_change_who_pays).
PASSTHROUGH = {
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("POST", "/v1/responses/input_tokens"),
    ("POST", "/v1/rerank"),
}
# Fields a server owns, as a forger would name them.
SERVER_OWNED: dict[str, Any] = {
    "id": "forged",
    "owner_id": "beta",
    "team_id": "beta",
    "created_by": "mallory",
    "created_at": 0,
    "updated_at": 0,
    "spend": 0,
    "spend_usd": 0,
    "cost_usd": 0,
    "digest": "00" * 32,
    "salt": "00" * 16,
    "key_hash": "00" * 32,
    "is_admin": True,
    "revoked_at": None,
    "version": 99,
    "principal": "master",
}


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    async for governed in governed_app(tmp_path, providers=[BagOfWords()], pricing=PRICING):
        yield governed


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _writes(gov: Governed) -> list[RouteSpec]:
    return [s for s in _api_specs(gov) if s.request_model is not None and s.method != "GET"]


def test_every_write_route_is_classified(gov: Governed) -> None:
    routes = {(s.method, s.path) for s in _writes(gov)}
    assert routes == set(STRICT_BODIES) | PASSTHROUGH
    for spec in _writes(gov):
        assert spec.request_model is not None
        extra = spec.request_model.model_config.get("extra")
        assert (extra == "forbid") == ((spec.method, spec.path) in STRICT_BODIES), spec.path


async def _objects(gov: Governed) -> tuple[str, dict[str, str]]:
    """Alpha's key (every scope but admin) and the path parameters of its objects."""
    made = await gov.admin(
        "POST", "/admin/keys", {"name": "a", "team": "alpha", "scopes": NON_ADMIN}
    )
    key = made.json()["key"]
    created = await gov.http.post(
        "/v1/rag/collections",
        json={"name": "kb", "embedding_model": "test/bow"},
        headers=_auth(key),
    )
    assert created.status_code == 201, created.text
    return key, {"id": made.json()["id"], "collection": "kb"}


def _path(spec: RouteSpec, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return "alpha" if name == "id" and "/keys/" not in spec.path else values[name]

    return re.sub(r"\{([^}:]+)\}", value, spec.path)


async def test_server_owned_fields_are_refused_on_every_strict_route(gov: Governed) -> None:
    alpha, values = await _objects(gov)
    for spec in _writes(gov):
        body = STRICT_BODIES.get((spec.method, spec.path))
        if body is None:
            continue
        auth = _auth(alpha) if spec.scope != "admin" else {}
        call = gov.admin if spec.scope == "admin" else None
        assert spec.request_model is not None
        for field, forged in SERVER_OWNED.items():
            if field in spec.request_model.model_fields:
                continue
            forged_body = {**body, field: forged}
            if call is not None:
                response = await call(spec.method, _path(spec, values), forged_body)
            else:
                response = await gov.http.request(
                    spec.method, _path(spec, values), json=forged_body, headers=auth
                )
            assert response.status_code == 400, (spec.method, spec.path, field, response.text)
            assert response.json()["error"]["param"] == field, (spec.path, response.text)
    # Nothing forged was stored: the key is alpha's, unrenamed and unrevoked.
    record = (await gov.admin("GET", f"/admin/keys/{values['id']}")).json()
    assert (record["name"], record["team"], record["revoked_at"]) == ("a", "alpha", None)
    assert "forged" not in (await gov.admin("GET", "/admin/keys")).text


async def test_nested_and_owner_fields_cannot_name_another_owner(gov: Governed) -> None:
    alpha, _ = await _objects(gov)
    forged = [
        ("/v1/rag/collections", {"name": "kb2", "owner": {"kind": "team", "id": "beta"}}),
        ("/v1/rag/collections", {"name": "kb2", "owner": "beta"}),
        ("/v1/prompts", {"name": "p2", "template": "Hi.", "owner": {"kind": "team", "id": "beta"}}),
        (
            "/v1/rag/collections/kb/documents",
            {"documents": [{"id": "d", "text": "Cats.", "content_hash": "0", "chunks": 0}]},
        ),
    ]
    params = ("owner", "owner", "owner", "documents[0].content_hash")
    for (path, body), param in zip(forged, params, strict=True):
        response = await gov.http.post(path, json=body, headers=_auth(alpha))
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"]["param"] == param, (path, response.text)
    # The owner a caller may choose is a kind, and its id is always the caller's.
    shared = await gov.http.post(
        "/v1/rag/collections",
        json={"name": "kb3", "embedding_model": "test/bow", "owner": "team"},
        headers=_auth(alpha),
    )
    assert shared.json()["owner"] == {"kind": "team", "id": "alpha"}
    prompt = await gov.http.post(
        "/v1/prompts", json={"name": "p3", "template": "Hi."}, headers=_auth(alpha)
    )
    assert prompt.json()["owner"] == {"kind": "team", "id": "alpha"}
    assert prompt.json()["version"] == 1


async def test_a_key_cannot_grant_what_is_not_a_scope_or_set_its_own_secret(
    gov: Governed,
) -> None:
    for body in (
        {"name": "x", "scopes": ["superuser"]},
        {"name": "x", "scopes": ["admin:all"]},
        {"name": "x", "key": "gh-0123456789abcdef_forgedsecretforgedsecret"},
    ):
        refused = await gov.admin("POST", "/admin/keys", body)
        assert refused.status_code == 400, (body, refused.text)


async def test_inference_bodies_cannot_change_who_pays(gov: Governed) -> None:
    alpha = await gov.new_key(name="alpha", team="alpha", user="alice", scopes=NON_ADMIN)
    forged = {
        "user": "mallory",
        "team": "beta",
        "key_id": "forged",
        "principal": "master",
        "cost_usd": 0,
        "metadata": {"team": "beta", "user": "mallory"},
    }
    answered = await gov.http.post(
        "/v1/chat/completions",
        json={"model": "test/echo", "messages": [{"role": "user", "content": "hi"}], **forged},
        headers=_auth(alpha),
    )
    assert answered.status_code == 200, answered.text
    await gov.governance.shipper.drain()
    events = (await gov.admin("GET", "/admin/requests")).json()["events"]
    assert len(events) == 1
    event = events[0]
    assert (event["team"], event["key_id"]) == ("alpha", alpha[3:19])
    assert event["user"] != "mallory"
    assert event["cost_usd"] > 0
    assert (await gov.admin("GET", "/admin/requests?team=beta")).json()["events"] == []
