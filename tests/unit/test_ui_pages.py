"""The dashboard's pages through the app (no browser): keys, logs, overview,
deployments, and what each role may see and do."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
from starlette.responses import Response

from gatehouse.ui.session import SESSION_COOKIE, UiIdentity

from .governed import MASTER, Governed, governed_app
from .ui_helpers import csrf_of, ui_login

_KEY = re.compile(r"gh-[0-9a-f]{16}_[A-Za-z0-9_-]+")


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    async for governed in governed_app(tmp_path):
        yield governed


async def _browser(gov: Governed) -> httpx.AsyncClient:
    """A second client on the same app with its own cookie jar."""
    transport = gov.http._transport
    return httpx.AsyncClient(transport=transport, base_url="http://gatehouse")


async def _create(http: httpx.AsyncClient, token: str, **fields: str | list[str]) -> str:
    response = await http.post("/ui/keys", data={"csrf_token": token, **fields})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    found = _KEY.findall(response.text)
    assert len(set(found)) == 1, "the new key is shown once on its page"
    return found[0]


async def test_create_use_see_and_revoke_a_key(gov: Governed) -> None:
    token = await ui_login(gov.http, MASTER)
    key = await _create(gov.http, token, name="web", scopes=["chat"])
    key_id = key[3:19]
    listing = await gov.http.get("/ui/keys")
    assert key_id in listing.text
    assert key not in listing.text
    assert key.split("_", 1)[1] not in (await gov.http.get(f"/ui/keys/{key_id}")).text

    answer = await gov.sdk(key).chat.completions.create(
        model="test/echo", messages=[{"role": "user", "content": "hello"}]
    )
    await gov.governance.shipper.drain()
    logs = await gov.http.get("/ui/logs", params={"key": key_id})
    assert answer.id in logs.text or key_id in logs.text
    assert "test/echo" in logs.text
    overview = await gov.http.get("/ui/overview")
    assert key_id in overview.text  # top keys by spend
    spend = re.search(r'id="total-spend">([0-9.]+) USD', overview.text)
    assert spend is not None
    assert float(spend.group(1)) > 0

    revoked = await gov.http.post(f"/ui/keys/{key_id}/revoke", data={"csrf_token": token})
    assert revoked.status_code == 303
    with pytest.raises(openai.AuthenticationError):
        await gov.sdk(key).chat.completions.create(
            model="test/echo", messages=[{"role": "user", "content": "again"}]
        )
    audit = await gov.http.get("/ui/audit")
    assert "revoke" in audit.text
    assert key not in audit.text


async def test_rotation_shows_the_new_secret_once_and_the_old_one_stops(gov: Governed) -> None:
    token = await ui_login(gov.http, MASTER)
    key = await _create(gov.http, token, name="rotating", scopes=["chat"])
    rotated = await gov.http.post(f"/ui/keys/{key[3:19]}/rotate", data={"csrf_token": token})
    new = _KEY.findall(rotated.text)
    assert len(set(new)) == 1
    assert new[0] != key
    with pytest.raises(openai.AuthenticationError):
        await gov.sdk(key).models.list()


async def test_budget_and_limits_are_set_through_the_admin_service(gov: Governed) -> None:
    token = await ui_login(gov.http, MASTER)
    key = await _create(gov.http, token, name="limited")
    response = await gov.http.post(
        f"/ui/keys/{key[3:19]}/limits",
        data={"csrf_token": token, "budget_usd": "2.5", "budget_period": "day", "rpm": "7"},
    )
    assert response.status_code == 303
    record = (await gov.admin("GET", f"/admin/keys/{key[3:19]}")).json()
    assert record["budget"] == {"max_usd": 2.5, "period": "day", "hard": True}
    assert record["limits"]["rpm"] == 7
    bad = await gov.http.post(
        f"/ui/keys/{key[3:19]}/limits", data={"csrf_token": token, "rpm": "lots"}
    )
    assert bad.status_code == 400
    assert "rpm must be a number" in bad.text
    team = await gov.http.post(
        "/ui/teams", data={"csrf_token": token, "team": "red", "budget_usd": "100"}
    )
    assert team.status_code == 303
    assert "red" in (await gov.http.get("/ui/teams")).text


async def test_a_team_admin_sees_and_changes_only_its_team(gov: Governed) -> None:
    red_admin = await gov.new_key(name="red-admin", team="red", scopes=["admin", "chat"])
    blue = await gov.new_key(name="blue-app", team="blue", scopes=["chat"])
    red = await gov.new_key(name="red-app", team="red", scopes=["chat"])
    await gov.sdk(blue).models.list()
    async with await _browser(gov) as http:
        token = await ui_login(http, red_admin)
        listing = await http.get("/ui/keys")
        assert red[3:19] in listing.text
        assert blue[3:19] not in listing.text
        assert (await http.get(f"/ui/keys/{blue[3:19]}")).status_code == 404
        refused = await http.post(f"/ui/keys/{blue[3:19]}/revoke", data={"csrf_token": token})
        assert refused.status_code == 404
        assert (await gov.admin("GET", f"/admin/keys/{blue[3:19]}")).json()["revoked_at"] is None
        # A key it creates lands in its team, without the admin scope.
        made = await _create(http, token, name="red-new", team="blue", scopes=["chat"])
        record = (await gov.admin("GET", f"/admin/keys/{made[3:19]}")).json()
        assert record["team"] == "red"
        escalate = await http.post(
            "/ui/keys", data={"csrf_token": token, "name": "x", "scopes": ["admin"]}
        )
        assert escalate.status_code == 403
        assert (await http.get("/ui/audit")).status_code == 403
        logs = await http.get("/ui/logs", params={"team": "blue"})
        assert blue[3:19] not in logs.text
        # The overview's top keys and spend are its team's alone.
        await gov.sdk(blue).chat.completions.create(
            model="test/echo", messages=[{"role": "user", "content": "blue spends"}]
        )
        await gov.governance.shipper.drain()
        overview = await http.get("/ui/overview")
        assert overview.status_code == 200
        assert blue[3:19] not in overview.text
    async with await _oidc_session(gov, "mallory") as http:
        overview = await http.get("/ui/overview")
        assert overview.status_code == 200
        assert blue[3:19] not in overview.text
    async with await _browser(gov) as http:  # while an administrator's shows it
        await ui_login(http, MASTER)
        assert blue[3:19] in (await http.get("/ui/overview")).text


async def _oidc_session(gov: Governed, subject: str) -> httpx.AsyncClient:
    """A browser holding the session the OIDC callback starts for ``subject``
    when the provider's claims give a viewer and no team."""
    identity = UiIdentity(kind="oidc", subject=subject, role="viewer", name=subject, team=None)
    issued = Response()
    gov.http._transport.app.state.ui.sessions.start(issued, identity, secure=False)  # type: ignore[attr-defined]
    cookie = issued.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    http = await _browser(gov)
    http.cookies.set(SESSION_COOKIE, cookie, path="/ui")
    return http


async def test_one_request_s_page_shows_only_the_session_s_own(gov: Governed) -> None:
    async def request_by(key: str) -> str:
        answer = await gov.sdk(key).chat.completions.with_raw_response.create(
            model="test/echo", messages=[{"role": "user", "content": "a blue secret"}]
        )
        return answer.headers["x-request-id"]

    blue = await gov.new_key(name="blue-app", team="blue", scopes=["chat"])
    mallory = await gov.new_key(name="mallory-app", user="mallory", scopes=["chat"])
    blues, mallorys = await request_by(blue), await request_by(mallory)
    await gov.governance.shipper.drain()
    red = await gov.new_key(name="red-viewer", team="red", scopes=["chat"])
    solo = await gov.new_key(name="solo", scopes=["chat"])
    for key in (red, solo):
        async with await _browser(gov) as http:
            await ui_login(http, key)
            assert (await http.get(f"/ui/logs/{blues}")).status_code == 404
    # A user's events are stored under a pseudonym: the scope must match that,
    # not skip the user (which showed a team-less OIDC viewer every request).
    async with await _oidc_session(gov, "mallory") as http:
        refused = await http.get(f"/ui/logs/{blues}")
        assert refused.status_code == 404
        assert "a blue secret" not in refused.text
        assert (await http.get(f"/ui/logs/{mallorys}")).status_code == 200
    async with await _browser(gov) as http:
        await ui_login(http, MASTER)
        assert (await http.get(f"/ui/logs/{blues}")).status_code == 200


async def test_a_viewer_reads_but_cannot_change(gov: Governed) -> None:
    viewer = await gov.new_key(name="viewer", team="red", scopes=["chat"])
    other = await gov.new_key(name="red-other", team="red", scopes=["chat"])
    async with await _browser(gov) as http:
        token = await ui_login(http, viewer)
        for path in ("/ui/overview", "/ui/keys", "/ui/logs", "/ui/deployments"):
            page = await http.get(path)
            assert page.status_code == 200, path
            assert "Revoke key" not in page.text
        refused = await http.post(f"/ui/keys/{other[3:19]}/revoke", data={"csrf_token": token})
        assert refused.status_code == 403
        assert "team admin" in refused.text
        assert (await http.get("/ui/teams")).status_code == 403


async def test_the_deployments_page_lists_groups_and_health(gov: Governed) -> None:
    await ui_login(gov.http, MASTER)
    page = await gov.http.get("/ui/deployments")
    assert page.status_code == 200
    assert "test/echo" in page.text
    assert "closed" in page.text


async def test_pages_are_html_with_the_session_token(gov: Governed) -> None:
    token = await ui_login(gov.http, MASTER)
    for path in ("/ui/overview", "/ui/keys", "/ui/teams", "/ui/audit", "/ui/logs"):
        page = await gov.http.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        assert csrf_of(page.text) == token
