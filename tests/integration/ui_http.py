"""The dashboard and the admin API of a running server, driven over HTTP with
httpx (no browser): logging in through the form, making keys with a master key."""

from __future__ import annotations

import re

import httpx

from .conftest import RunningServer

KEY = re.compile(r"gh-[0-9a-f]{16}_[A-Za-z0-9_-]+")
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_META = re.compile(r'name="csrf-token" content="([^"]+)"')


def client(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=30)


def try_login(http: httpx.Client, key: str, address: str | None = None) -> httpx.Response:
    """Post the login form with ``key``, from ``address`` (``X-Forwarded-For``,
    believed only by a server that trusts its peer) if given."""
    headers = {} if address is None else {"x-forwarded-for": address}
    token = _TOKEN.search(http.get("/ui/login", headers=headers).text)
    assert token is not None
    return http.post("/ui/login", data={"key": key, "csrf_token": token.group(1)}, headers=headers)


def log_in(http: httpx.Client, key: str, address: str | None = None) -> str:
    """Log in with ``key`` (the cookie stays in ``http``); the session's CSRF token."""
    response = try_login(http, key, address)
    assert response.status_code == 303, response.text
    page = http.get("/ui/keys")
    assert page.status_code == 200
    found = _TOKEN.search(page.text) or _META.search(page.text)
    assert found is not None
    return found.group(1)


def new_key(server: RunningServer, master: str, **body: object) -> str:
    """A new key made through ``POST /admin/keys`` with the master key; its secret."""
    response = httpx.post(
        f"{server.base_url}/admin/keys",
        json={"name": "ui-test", **body},
        headers={"authorization": f"Bearer {master}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key
