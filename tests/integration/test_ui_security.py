"""The dashboard's security against a real gatehouse process, over HTTP (no browser):
no session is a redirect to login, a state change without the CSRF token is
refused, a key's secret appears in no page after its creation page, a team
admin cannot see or revoke another team's keys, and a session made on one
replica holds on another until its key is revoked."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gatehouse.ui.routes import ROUTES
from gatehouse.ui.session import SESSION_COOKIE

from .conftest import RunningServer, start_server, stop_server
from .ui_http import KEY, client, log_in, new_key

pytestmark = pytest.mark.integration

MASTER = "sk-master-ui-security-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("ui-security") / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}
    )
    yield running
    stop_server(running)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_no_session_redirects_every_page_to_login(server: RunningServer) -> None:
    with client(server) as http:
        for spec in ROUTES:
            if spec.scope == "public":
                continue
            response = http.request(spec.method, _concrete(spec.path))
            assert response.status_code == 303, (spec.method, spec.path)
            assert response.headers["location"].startswith("/ui/login?next=")


def test_state_changes_without_the_csrf_token_are_refused(server: RunningServer) -> None:
    victim = new_key(server, MASTER, name="victim", scopes=["chat"])
    with client(server) as http:
        log_in(http, MASTER)
        revoke = http.post(f"/ui/keys/{victim[3:19]}/revoke", data={})
        assert revoke.status_code == 403
        forged = http.post(
            f"/ui/keys/{victim[3:19]}/revoke",
            data={"csrf_token": "x" * 32},
            headers={"x-csrf-token": "also-wrong"},
        )
        assert forged.status_code == 403
        created = http.post("/ui/keys", data={"name": "no-token"})
        assert created.status_code == 403
        assert not KEY.search(created.text)
    check = httpx.get(
        f"{server.base_url}/admin/keys/{victim[3:19]}",
        headers={"authorization": f"Bearer {MASTER}"},
    )
    assert check.json()["revoked_at"] is None


def test_a_key_secret_is_in_no_page_after_its_creation(server: RunningServer) -> None:
    with client(server) as http:
        token = log_in(http, MASTER)
        created = http.post("/ui/keys", data={"csrf_token": token, "name": "shown-once"})
        assert created.status_code == 200
        assert created.headers["cache-control"] == "no-store"
        key = KEY.search(created.text)
        assert key is not None
        secret = key.group(0).split("_", 1)[1]
        pages = ["/ui/keys", f"/ui/keys/{key.group(0)[3:19]}", "/ui/audit", "/ui/overview"]
        pages += ["/ui/logs", "/ui/teams", "/ui/deployments", f"/ui/keys?q={key.group(0)[3:19]}"]
        for path in pages:
            page = http.get(path)
            assert page.status_code == 200, path
            assert secret not in page.text, path


def test_a_team_admin_cannot_see_or_revoke_another_teams_keys(server: RunningServer) -> None:
    blue_key = new_key(server, MASTER, name="blue-app", team="blue", scopes=["chat"])
    red_admin = new_key(server, MASTER, name="red-admin", team="red", scopes=["admin"])
    blue_id = blue_key[3:19]
    with client(server) as http:
        token = log_in(http, red_admin)
        assert blue_id not in http.get("/ui/keys").text
        searched = http.get(f"/ui/keys?q={blue_id}").text
        assert f'href="/ui/keys/{blue_id}"' not in searched
        assert "No keys match" in searched
        assert http.get(f"/ui/keys/{blue_id}").status_code == 404
        for action in ("revoke", "rotate", "limits"):
            refused = http.post(f"/ui/keys/{blue_id}/{action}", data={"csrf_token": token})
            assert refused.status_code == 404, action
        assert http.get("/ui/audit").status_code == 403
    still = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json={"model": "nothing", "messages": [{"role": "user", "content": "x"}]},
        headers={"authorization": f"Bearer {blue_key}"},
    )
    assert still.status_code != 401  # the key still authenticates (the model is unknown)


def test_a_session_works_on_every_replica_and_ends_on_each_when_its_key_is_revoked(
    postgres_url: str, tmp_path: Path
) -> None:
    """Two processes sharing one PostgreSQL and the master key: a session made on
    one is honoured by the other, and revoking its key on one ends it on both."""
    env = {"GATEHOUSE_MASTER_KEY": MASTER, "GATEHOUSE_STORE__DATABASE_URL": postgres_url}
    replicas = [start_server(tmp_path / f"data-{i}", env=env) for i in range(2)]
    try:
        first, second = replicas
        key = new_key(first, MASTER, name="roaming", team="red", scopes=["chat"])
        with client(first) as http:
            log_in(http, key)
            cookie = http.cookies[SESSION_COOKIE]
        with httpx.Client(base_url=second.base_url, timeout=30) as other:
            other.cookies.set(SESSION_COOKIE, cookie)
            page = other.get("/ui/keys")
            assert page.status_code == 200
            assert "roaming" in page.text
            revoked = httpx.delete(
                f"{first.base_url}/admin/keys/{key[3:19]}",
                headers={"authorization": f"Bearer {MASTER}"},
            )
            assert revoked.status_code == 200
            # The revocation poll runs every half second; allow a slow machine plenty.
            deadline = time.monotonic() + 30
            while other.get("/ui/keys").status_code != 303:
                assert time.monotonic() < deadline, "the other replica kept the session"
                time.sleep(0.1)
    finally:
        for replica in replicas:
            stop_server(replica)
