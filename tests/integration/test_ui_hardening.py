"""Hardening of the dashboard and the admin API against a real gatehouse process:
nobody grants a scope it does not hold (dashboard and admin API)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from .conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.integration

MASTER = "sk-master-ui-hardening-0123456789"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_META = re.compile(r'name="csrf-token" content="([^"]+)"')
_KEY = re.compile(r"gh-[0-9a-f]{16}_[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("ui-hardening") / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}
    )
    yield running
    stop_server(running)


def _client(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=30)


def _log_in(http: httpx.Client, key: str) -> str:
    """Log in with ``key``; the session's CSRF token."""
    token = _TOKEN.search(http.get("/ui/login").text)
    assert token is not None
    response = http.post("/ui/login", data={"key": key, "csrf_token": token.group(1)})
    assert response.status_code == 303, response.text
    page = http.get("/ui/keys")
    assert page.status_code == 200
    found = _TOKEN.search(page.text) or _META.search(page.text)
    assert found is not None
    return found.group(1)


def _admin(
    server: RunningServer,
    method: str,
    path: str,
    key: str = MASTER,
    json: dict[str, object] | None = None,
) -> httpx.Response:
    return httpx.request(
        method,
        f"{server.base_url}{path}",
        headers={"authorization": f"Bearer {key}"},
        json=json,
        timeout=30,
    )


def _new_key(server: RunningServer, **body: object) -> str:
    response = _admin(server, "POST", "/admin/keys", json={"name": "ui-hardening", **body})
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def _names(server: RunningServer) -> list[str]:
    return [k["name"] for k in _admin(server, "GET", "/admin/keys").json()["keys"]]


def _refused_scope(response: httpx.Response, scope: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "scope_not_held"
    assert error["param"] == "scopes"
    assert f"'{scope}'" in error["message"]


# -- granting scopes --


def test_a_team_admin_grants_only_scopes_it_holds_on_the_dashboard(server: RunningServer) -> None:
    lead = _new_key(server, name="green-lead", team="green", scopes=["admin", "chat"])
    wide = _new_key(server, name="green-wide", team="green", scopes=["chat", "embeddings"])
    wide_id = wide[3:19]
    with _client(server) as http:
        token = _log_in(http, lead)
        form = http.get("/ui/keys").text
        assert 'value="chat"' in form
        assert 'value="embeddings"' not in form
        assert 'value="rag:write"' not in form
        for scopes in (["rag:write"], ["chat", "embeddings"], []):
            # No scope ticked is the default set, chat and embeddings: embeddings is not held.
            refused = http.post(
                "/ui/keys", data={"csrf_token": token, "name": "green-escalated", "scopes": scopes}
            )
            assert refused.status_code == 403, scopes
            missing = "rag:write" if scopes == ["rag:write"] else "embeddings"
            assert f"the &#39;{missing}&#39; scope" in refused.text
            assert not _KEY.search(refused.text)
        assert "green-escalated" not in _names(server)
        made = http.post(
            "/ui/keys", data={"csrf_token": token, "name": "green-chat", "scopes": ["chat"]}
        )
        assert made.status_code == 200
        assert _KEY.search(made.text)
        # Rotating a key with a scope the lead lacks would hand it that scope.
        rotated = http.post(f"/ui/keys/{wide_id}/rotate", data={"csrf_token": token})
        assert rotated.status_code == 403
        assert "the &#39;embeddings&#39; scope" in rotated.text
        assert not _KEY.search(rotated.text)
        # Its budget and limits are no grant: they may change.
        limits = http.post(f"/ui/keys/{wide_id}/limits", data={"csrf_token": token, "rpm": "5"})
        assert limits.status_code == 303
    old_secret_works = httpx.get(
        f"{server.base_url}/v1/models", headers={"authorization": f"Bearer {wide}"}
    )
    assert old_secret_works.status_code == 200
    assert _admin(server, "GET", f"/admin/keys/{wide_id}").json()["limits"]["rpm"] == 5


def test_an_admin_key_grants_only_scopes_it_holds_on_the_admin_api(server: RunningServer) -> None:
    operator = _new_key(server, name="ops", scopes=["admin", "chat"])
    target = _new_key(server, name="ops-target", scopes=["chat", "embeddings"])
    target_id = target[3:19]
    created = _admin(
        server, "POST", "/admin/keys", operator, json={"name": "ops-rag", "scopes": ["rag:read"]}
    )
    _refused_scope(created, "rag:read")
    defaulted = _admin(server, "POST", "/admin/keys", operator, json={"name": "ops-default"})
    _refused_scope(defaulted, "embeddings")
    assert "ops-rag" not in _names(server)
    assert "ops-default" not in _names(server)
    patched = _admin(
        server, "PATCH", f"/admin/keys/{target_id}", operator, json={"scopes": ["prompts:write"]}
    )
    _refused_scope(patched, "prompts:write")
    rotated = _admin(server, "POST", f"/admin/keys/{target_id}/rotate", operator)
    _refused_scope(rotated, "embeddings")
    record = _admin(server, "GET", f"/admin/keys/{target_id}").json()
    assert record["scopes"] == ["chat", "embeddings"]
    # What it holds, it may grant; narrowing a key is no grant either.
    narrowed = _admin(
        server, "PATCH", f"/admin/keys/{target_id}", operator, json={"scopes": ["chat"]}
    )
    assert narrowed.status_code == 200, narrowed.text
    assert _admin(server, "POST", f"/admin/keys/{target_id}/rotate", operator).status_code == 200
    made = _admin(
        server, "POST", "/admin/keys", operator, json={"name": "ops-chat", "scopes": ["chat"]}
    )
    assert made.status_code == 201
    # The master key holds every scope.
    everything = _new_key(server, name="master-made", scopes=["rag:write", "prompts:write"])
    assert everything.startswith("gh-")
