"""Single sign-on to the dashboard through a real OpenID provider, over real HTTP.

The provider (``oidc_provider.py``) approves at once; httpx follows the whole
round trip: gatehouse -> provider's authorize -> gatehouse's callback -> the
page asked for. A user's role comes from their groups, and what they do in
the playground is in the ledger as them. Each tampered sign-in is refused,
and leaves no session behind.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import MASTER, admin, write_config
from .oidc_provider import OidcProvider

SESSION = "gatehouse_session"
# Where the "Signed in" page moves on to, by itself (a meta refresh).
MOVE_ON = re.compile(r'<meta http-equiv="refresh" content="0;url=([^"]*)">')


@pytest.fixture
def idp(oidc_provider: OidcProvider) -> OidcProvider:
    oidc_provider.reset()
    return oidc_provider


@pytest.fixture(scope="module")
def sso(
    oidc_provider: OidcProvider, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("sso")
    extra = oidc_provider.ui_config("{ops: admin, leads: team_admin}")
    config = write_config(root / "gatehouse.yaml", upstream, extra)
    server = start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=config)
    yield server
    stop_server(server)


def browser(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, follow_redirects=True, timeout=30)


def test_the_login_page_offers_single_sign_on(sso: RunningServer) -> None:
    with browser(sso) as http:
        page = http.get("/ui/login")
    assert 'href="/ui/oidc/login?next=/ui"' in page.text


def sign_in(http: httpx.Client, next: str) -> str:
    """Sign in through the provider; the page the "Signed in" page moves on to."""
    done = http.get("/ui/oidc/login", params={"next": next})
    assert done.status_code == 200, done.text
    assert done.url.path == "/ui/oidc/callback"
    target = MOVE_ON.search(done.text)
    assert target is not None, done.text
    return target.group(1)


def test_signing_in_lands_on_the_page_asked_for_with_the_mapped_role(
    sso: RunningServer, idp: OidcProvider
) -> None:
    idp.claims = {"sub": "u-9", "email": "grace@example.com", "groups": ["staff", "ops"]}
    with browser(sso) as http:
        target = sign_in(http, "/ui/playground")
        assert target == "/ui/playground"
        assert SESSION in http.cookies
        assert "gatehouse_oidc" not in http.cookies  # the pending sign-in is spent
        page = http.get(target)
        assert page.url.path == "/ui/playground"
        assert "grace@example.com · admin" in page.text
    assert idp.token_requests[-1]["code_verifier"]


def test_an_sso_user_chats_in_the_playground_as_themselves(
    sso: RunningServer, idp: OidcProvider, upstream: FakeUpstream
) -> None:
    idp.claims = {"sub": "u-viewer", "email": "lin@example.com", "groups": []}
    with browser(sso) as http:
        page = http.get(sign_in(http, "/ui/playground"))
        assert "lin@example.com · viewer" in page.text
        csrf = page.text.split('<meta name="csrf-token" content="')[1].split('"')[0]
        answer = http.post(
            "/ui/playground/chat",
            json={"model": "up", "messages": [{"role": "user", "content": "one two"}]},
            headers={"x-csrf-token": csrf},
        )
    assert answer.status_code == 200, answer.text
    assert "data: [DONE]" in answer.text
    mine: list[dict[str, object]] = []
    for _ in range(100):  # the shipper moves usage to the ledger every 0.2 s
        rows = admin(sso, "GET", "/admin/ledger?limit=100").json()["events"]
        mine = [r for r in rows if r["principal"] == "oidc:u-viewer"]
        if mine:
            break
        time.sleep(0.1)
    assert [(r["user"], r["tag"], r["status"]) for r in mine] == [
        ("u-viewer", "ui.playground", "ok")
    ]


@pytest.mark.parametrize("tamper", ["state", "nonce", "expired", "signature", "audience"])
def test_a_tampered_sign_in_is_refused_and_leaves_no_session(
    sso: RunningServer, idp: OidcProvider, tamper: str
) -> None:
    idp.tamper = tamper  # type: ignore[assignment]
    with browser(sso) as http:
        page = http.get("/ui/oidc/login", params={"next": "/ui/playground"})
        assert page.status_code == 401, (tamper, page.text)
        assert page.url.path == "/ui/oidc/callback"
        assert "Single sign-on failed" in page.text
        assert SESSION not in http.cookies
        after = http.get("/ui/playground", follow_redirects=False)
        assert after.status_code == 303
        assert after.headers["location"].startswith("/ui/login")


def test_a_callback_without_a_sign_in_in_progress_is_refused(
    sso: RunningServer, idp: OidcProvider
) -> None:
    with browser(sso) as http:
        start = http.get("/ui/oidc/login", follow_redirects=False)
        authorize = httpx.get(start.headers["location"])  # the code, but not the cookie
        location = authorize.headers["location"]
        stolen = httpx.get(location, follow_redirects=False)  # another browser: no cookie
    assert stolen.status_code == 401
    assert SESSION not in stolen.cookies


def test_sign_in_goes_back_only_to_a_dashboard_page(sso: RunningServer, idp: OidcProvider) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/v1/models"):
        with browser(sso) as http:
            assert sign_in(http, target) == "/ui"
