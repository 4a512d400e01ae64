"""The dashboard's sessions, roles, CSRF check and security headers, through the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gatehouse.core.config import Settings
from gatehouse.core.principal import Principal
from gatehouse.gateway import Gateway, ModelRegistry
from gatehouse.server import create_app
from gatehouse.server.routes.table import RouteSpec
from gatehouse.ui.routes import ROUTES
from gatehouse.ui.session import SESSION_COOKIE, Signer, role_for

from .fakes import EchoChat
from .governed import MASTER, Governed, governed_app
from .test_route_authz import _concrete
from .ui_helpers import login_token, ui_login


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    async for governed in governed_app(tmp_path):
        yield governed


def _pages(public: bool) -> list[RouteSpec]:
    return [spec for spec in ROUTES if (spec.scope == "public") == public]


def test_signed_values_round_trip_and_refuse_tampering() -> None:
    signer = Signer(b"k" * 32)
    value = signer.sign(b'{"a": 1}')
    assert signer.unsign(value) == b'{"a": 1}'
    body, _, signature = value.partition(".")
    assert signer.unsign(f"{body}x.{signature}") is None
    assert Signer(b"j" * 32).unsign(value) is None
    assert signer.unsign("no-signature") is None


def test_roles_follow_the_admin_scope_and_the_team() -> None:
    assert role_for(Principal(id="master", kind="master")) == "admin"
    admin = Principal(id="key:a", kind="key", scopes=frozenset({"admin"}))
    assert role_for(admin) == "admin"
    team_admin = Principal(id="key:b", kind="key", scopes=frozenset({"admin"}), team="red")
    assert role_for(team_admin) == "team_admin"
    viewer = Principal(id="key:c", kind="key", scopes=frozenset({"chat"}), team="red")
    assert role_for(viewer) == "viewer"


async def test_every_page_without_a_session_redirects_to_login(gov: Governed) -> None:
    for spec in _pages(public=False):
        response = await gov.http.request(spec.method, _concrete(spec.path))
        assert response.status_code == 303, (spec.method, spec.path, response.text)
        assert response.headers["location"].startswith("/ui/login?next=/ui")


async def test_a_bearer_key_is_no_session(gov: Governed) -> None:
    response = await gov.http.get("/ui", headers={"authorization": f"Bearer {MASTER}"})
    assert response.status_code == 303


async def test_every_state_change_without_the_csrf_token_is_refused(gov: Governed) -> None:
    await ui_login(gov.http, MASTER)
    changes = [spec for spec in ROUTES if spec.method not in {"GET", "HEAD"}]
    assert changes
    for spec in changes:
        response = await gov.http.request(spec.method, _concrete(spec.path), data={"x": "1"})
        assert response.status_code == 403, (spec.method, spec.path, response.text)
        assert "CSRF" in response.text
        wrong = await gov.http.request(
            spec.method, _concrete(spec.path), headers={"x-csrf-token": "forged"}
        )
        assert wrong.status_code == 403, (spec.method, spec.path)
    assert (await gov.http.get("/ui", follow_redirects=True)).status_code == 200  # still in


async def test_login_needs_the_login_forms_token(gov: Governed) -> None:
    response = await gov.http.post("/ui/login", data={"key": MASTER})
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.cookies


async def test_a_wrong_key_is_refused_with_one_message(gov: Governed) -> None:
    token = await login_token(gov.http)
    for key in ("gh-0123456789abcdef_" + "x" * 32, "nonsense", ""):
        response = await gov.http.post("/ui/login", data={"key": key, "csrf_token": token})
        assert response.status_code == 401
        assert "That key was not accepted." in response.text
        assert SESSION_COOKIE not in response.cookies


async def test_the_session_cookie_is_http_only_and_strict(gov: Governed) -> None:
    token = await login_token(gov.http)
    response = await gov.http.post("/ui/login", data={"key": MASTER, "csrf_token": token})
    cookie = next(
        value
        for name, value in response.headers.multi_items()
        if name == "set-cookie" and value.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/ui" in cookie
    assert MASTER not in cookie


async def test_pages_carry_a_strict_content_security_policy(gov: Governed) -> None:
    await ui_login(gov.http, MASTER)
    for path in ("/ui/login", "/ui"):
        response = await gov.http.get(path, follow_redirects=True)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert "<script>" not in response.text  # no inline script anywhere


async def test_a_revoked_key_ends_its_session(gov: Governed) -> None:
    key = await gov.new_key(name="watcher", scopes=["chat"])
    await ui_login(gov.http, key)
    key_id = key[3:19]
    assert (await gov.admin("DELETE", f"/admin/keys/{key_id}")).status_code == 200
    response = await gov.http.get("/ui")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login")


async def test_a_rotated_key_ends_its_session(gov: Governed) -> None:
    key = await gov.new_key(name="watcher", scopes=["chat"])
    await ui_login(gov.http, key)
    rotated = await gov.admin("POST", f"/admin/keys/{key[3:19]}/rotate")
    assert rotated.status_code == 200
    assert (await gov.http.get("/ui")).status_code == 303


async def test_a_forged_session_cookie_is_no_session(gov: Governed) -> None:
    await ui_login(gov.http, MASTER)
    cookie = gov.http.cookies[SESSION_COOKIE]
    body, _, signature = cookie.partition(".")
    gov.http.cookies.set(SESSION_COOKIE, body[:-2] + "AA." + signature, path="/ui")
    assert (await gov.http.get("/ui")).status_code == 303


async def test_static_assets_are_served_from_the_package_only(gov: Governed) -> None:
    css = await gov.http.get("/ui/static/app.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    for path in ("/ui/static/../session.py", "/ui/static/nope.js", "/ui/static/%2e%2e/login.py"):
        assert (await gov.http.get(path)).status_code == 404, path


async def test_logging_out_ends_the_session(gov: Governed) -> None:
    token = await ui_login(gov.http, MASTER)
    response = await gov.http.post("/ui/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert (await gov.http.get("/ui")).status_code == 303


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/v1/models"])
async def test_login_goes_back_only_to_a_dashboard_page(gov: Governed, target: str) -> None:
    token = await login_token(gov.http)
    response = await gov.http.post(
        "/ui/login", data={"key": MASTER, "csrf_token": token, "next": target}
    )
    assert response.headers["location"] == "/ui"


async def test_authentication_off_logs_in_as_a_local_admin(tmp_path: Path) -> None:
    registry = ModelRegistry([EchoChat()], {"default": "test/echo"})
    app = create_app(Settings(data_dir=tmp_path), gateway=Gateway(registry, started_at=0))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse") as http:
        assert (await http.get("/ui")).status_code == 303
        await ui_login(http, "")
        page = await http.get("/ui", follow_redirects=True)
        assert "local user" in page.text
    assert (tmp_path / "ui-session-secret").exists()
