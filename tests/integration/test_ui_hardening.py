"""Hardening of the dashboard and the admin API against real gatehouse processes:
nobody grants a scope it does not hold (dashboard and admin API); failed logins
and refused API credentials are limited per client address (and logins per key
guessed at), on every replica; logging out ends a session everywhere, a copy of
its cookie included.

The module's server trusts ``X-Forwarded-For`` from any peer
(``server.forwarded_allow_ips: "*"``), so one test process speaks from many
client addresses; the replicas trust nobody, so there the header changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gatehouse.ui.session import SESSION_COOKIE

from ..services import Redis
from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import write_config
from .oidc_provider import OidcProvider
from .ui_http import KEY, client, log_in, new_key, try_login

pytestmark = pytest.mark.integration

MASTER = "sk-master-ui-hardening-0123456789"
# Small limits with long windows: no capacity comes back during a test.
LIMITS = {
    "GATEHOUSE_AUTH__FAILED_ATTEMPTS__LOGIN_PER_ADDRESS": "3",
    "GATEHOUSE_AUTH__FAILED_ATTEMPTS__LOGIN_PER_KEY": "4",
    "GATEHOUSE_AUTH__FAILED_ATTEMPTS__API_PER_ADDRESS": "5",
    "GATEHOUSE_AUTH__FAILED_ATTEMPTS__API_WINDOW_SECONDS": "3600",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("ui-hardening") / "data",
        env={
            **LIMITS,
            "GATEHOUSE_MASTER_KEY": MASTER,
            "GATEHOUSE_SERVER__FORWARDED_ALLOW_IPS": "*",
        },
    )
    yield running
    stop_server(running)


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
    lead = new_key(server, MASTER, name="green-lead", team="green", scopes=["admin", "chat"])
    wide = new_key(server, MASTER, name="green-wide", team="green", scopes=["chat", "embeddings"])
    wide_id = wide[3:19]
    with client(server) as http:
        token = log_in(http, lead)
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
            assert not KEY.search(refused.text)
        assert "green-escalated" not in _names(server)
        made = http.post(
            "/ui/keys", data={"csrf_token": token, "name": "green-chat", "scopes": ["chat"]}
        )
        assert made.status_code == 200
        assert KEY.search(made.text)
        # Rotating a key with a scope the lead lacks would hand it that scope.
        rotated = http.post(f"/ui/keys/{wide_id}/rotate", data={"csrf_token": token})
        assert rotated.status_code == 403
        assert "the &#39;embeddings&#39; scope" in rotated.text
        assert not KEY.search(rotated.text)
        # Its budget and limits are no grant: they may change.
        limits = http.post(f"/ui/keys/{wide_id}/limits", data={"csrf_token": token, "rpm": "5"})
        assert limits.status_code == 303
    old_secret_works = httpx.get(
        f"{server.base_url}/v1/models", headers={"authorization": f"Bearer {wide}"}
    )
    assert old_secret_works.status_code == 200
    assert _admin(server, "GET", f"/admin/keys/{wide_id}").json()["limits"]["rpm"] == 5


def test_an_admin_key_grants_only_scopes_it_holds_on_the_admin_api(server: RunningServer) -> None:
    operator = new_key(server, MASTER, name="ops", scopes=["admin", "chat"])
    target = new_key(server, MASTER, name="ops-target", scopes=["chat", "embeddings"])
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
    everything = new_key(server, MASTER, name="master-made", scopes=["rag:write", "prompts:write"])
    assert everything.startswith("gh-")


# -- failed authentications --


def _refused_for_a_while(response: httpx.Response, window: float) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= window


def test_failed_logins_are_limited_per_address(server: RunningServer) -> None:
    holder = new_key(server, MASTER, name="login-holder", scopes=["chat"])
    wrong = "gh-" + "0" * 16 + "_" + "x" * 32
    with client(server) as http:
        for _ in range(3):
            assert try_login(http, wrong, "10.0.1.1").status_code == 401
        refused = try_login(http, wrong, "10.0.1.1")
        _refused_for_a_while(refused, 900)
        assert "Too many failed logins from your address" in refused.text
        # Refused before it is checked: the right key from there too.
        right_but_refused = try_login(http, holder, "10.0.1.1")
        _refused_for_a_while(right_but_refused, 900)
        assert SESSION_COOKIE not in http.cookies
        # Another address is not held back by them.
        assert try_login(http, holder, "10.0.1.2").status_code == 303


def test_guessing_one_key_from_many_addresses_spares_its_holder(server: RunningServer) -> None:
    holder = new_key(server, MASTER, name="guessed", scopes=["chat"])
    guess = holder[:20] + "y" * 32  # its id, a wrong secret
    with client(server) as http:
        for n in range(1, 5):  # the key's limit, one failure from each of four addresses
            assert try_login(http, guess, f"10.0.2.{n}").status_code == 401
        # Over it: an address that failed on this key is refused, even with the key itself.
        _refused_for_a_while(try_login(http, guess, "10.0.2.1"), 900)
        _refused_for_a_while(try_login(http, holder, "10.0.2.2"), 900)
        # A new address gets its one try, and no second.
        assert try_login(http, guess, "10.0.2.5").status_code == 401
        again = try_login(http, guess, "10.0.2.5")
        _refused_for_a_while(again, 900)
        assert "Too many failed logins with this key" in again.text
        # Whoever holds the key logs in from an address that did not guess.
        assert try_login(http, holder, "10.0.2.9").status_code == 303
        # A successful login is given back: it is no failure of that address.
        for _ in range(3):
            http.cookies.clear()
            assert try_login(http, holder, "10.0.2.10").status_code == 303


def test_refused_api_credentials_are_limited_per_address(server: RunningServer) -> None:
    holder = new_key(server, MASTER, name="api-holder", scopes=["chat"])

    def models(key: str | None, address: str) -> httpx.Response:
        headers = {"x-forwarded-for": address}
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
        return httpx.get(f"{server.base_url}/v1/models", headers=headers, timeout=30)

    made_up = "gh-" + "1" * 16 + "_" + "z" * 32
    for n in range(5):
        assert models(made_up, "10.0.3.1").status_code == 401, n
    refused = models(made_up, "10.0.3.1")
    _refused_for_a_while(refused, 3600)
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "too_many_failed_attempts"
    # The address is refused before anything it sends is checked, a valid key too...
    _refused_for_a_while(models(holder, "10.0.3.1"), 3600)
    # ... but no other address, and no call without a credential counts.
    assert models(holder, "10.0.3.2").status_code == 200
    for _ in range(8):
        assert models(None, "10.0.3.3").status_code == 401
    assert models(holder, "10.0.3.3").status_code == 200


def test_refused_single_sign_ons_are_limited_per_address(
    oidc_provider: OidcProvider, upstream: FakeUpstream, tmp_path: Path
) -> None:
    """A callback that reaches the provider's token endpoint is an attempt of its
    address: refused ones count, and past the limit the provider is not called."""
    config = write_config(tmp_path / "gatehouse.yaml", upstream, oidc_provider.ui_config())
    env = {
        "GATEHOUSE_MASTER_KEY": MASTER,
        "GATEHOUSE_SERVER__FORWARDED_ALLOW_IPS": "*",
        "GATEHOUSE_AUTH__FAILED_ATTEMPTS__LOGIN_PER_ADDRESS": "2",
    }
    sso = start_server(tmp_path / "data", env=env, config=config)

    def sign_in(address: str) -> httpx.Response:
        with httpx.Client(
            base_url=sso.base_url,
            follow_redirects=True,
            timeout=30,
            headers={"x-forwarded-for": address},
        ) as http:
            return http.get("/ui/oidc/login", params={"next": "/ui"})

    try:
        oidc_provider.reset()
        oidc_provider.tamper = "nonce"
        for _ in range(2):
            assert sign_in("10.0.5.1").status_code == 401
        exchanged = len(oidc_provider.token_requests)
        oidc_provider.tamper = None  # a good sign-in now, but from the same address
        refused = sign_in("10.0.5.1")
        _refused_for_a_while(refused, 900)
        assert "Too many failed logins from your address" in refused.text
        assert len(oidc_provider.token_requests) == exchanged  # the provider was not called
        signed_in = sign_in("10.0.5.2")
        assert signed_in.status_code == 200
        assert signed_in.url.path == "/ui/oidc/callback"
        assert "Signed in" in signed_in.text
    finally:
        stop_server(sso)


# -- logging out --


def test_logging_out_refuses_a_copy_of_the_cookie(server: RunningServer) -> None:
    key = new_key(server, MASTER, name="leaving", team="green", scopes=["chat"])
    with client(server) as http:
        token = log_in(http, key, "10.0.4.1")
        copied = http.cookies[SESSION_COOKIE]
        with client(server) as thief:
            thief.cookies.set(SESSION_COOKIE, copied)
            assert thief.get("/ui/keys").status_code == 200
            out = http.post("/ui/logout", data={"csrf_token": token})
            assert out.status_code == 303
            assert SESSION_COOKIE not in http.cookies
            refused = thief.get("/ui/keys")
            assert refused.status_code == 303
            assert refused.headers["location"].startswith("/ui/login")
            revoke = thief.post(f"/ui/keys/{key[3:19]}/revoke", data={"csrf_token": token})
            assert revoke.status_code == 303
    # The key itself is untouched: a new login makes a new session.
    with client(server) as again:
        log_in(again, key, "10.0.4.1")


def test_replicas_share_logouts_and_failed_attempts(
    redis_server: Redis, postgres_url: str, tmp_path: Path
) -> None:
    """Two processes sharing Redis and PostgreSQL, trusting no proxy: a logout
    on one ends the session on the other at once, and failures on one count on
    the other, whatever ``X-Forwarded-For`` claims."""
    env = {
        **LIMITS,
        "GATEHOUSE_MASTER_KEY": MASTER,
        "GATEHOUSE_STORE__DATABASE_URL": postgres_url,
        "GATEHOUSE_STORE__REDIS_URL": redis_server.url,
    }
    replicas = [start_server(tmp_path / f"data-{i}", env=env) for i in range(2)]
    try:
        first, second = replicas
        key = new_key(first, MASTER, name="roaming", scopes=["chat"])
        with client(first) as http, client(second) as other:
            token = log_in(http, key)
            other.cookies.set(SESSION_COOKIE, http.cookies[SESSION_COOKIE])
            assert other.get("/ui/keys").status_code == 200
            assert http.post("/ui/logout", data={"csrf_token": token}).status_code == 303
            assert other.get("/ui/keys").status_code == 303
            other.cookies.clear()
            wrong = "gh-" + "2" * 16 + "_" + "w" * 32
            for n in range(3):
                assert try_login(http, wrong, f"10.9.0.{n}").status_code == 401
            _refused_for_a_while(try_login(other, key, "10.9.9.9"), 900)
        bad = {"authorization": f"Bearer {wrong}"}
        for _ in range(5):
            assert httpx.get(f"{first.base_url}/v1/models", headers=bad).status_code == 401
        _refused_for_a_while(httpx.get(f"{second.base_url}/v1/models", headers=bad), 3600)
    finally:
        for replica in replicas:
            stop_server(replica)
