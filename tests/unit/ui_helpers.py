"""Logging in to the dashboard from a test, with httpx (no browser)."""

from __future__ import annotations

import re

import httpx

_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')
_META = re.compile(r'<meta name="csrf-token" content="([^"]*)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page gives its forms."""
    match = _META.search(html) or _CSRF.search(html)
    assert match is not None, "no CSRF token on the page"
    assert match.group(1), "an empty CSRF token"
    return match.group(1)


async def login_token(http: httpx.AsyncClient) -> str:
    """The login form's CSRF token (the login page also sets its cookie on ``http``)."""
    page = await http.get("/ui/login")
    token = _CSRF.search(page.text)
    assert token is not None
    return token.group(1)


async def ui_login(http: httpx.AsyncClient, key: str) -> str:
    """Log ``http`` in with ``key`` (its cookie jar keeps the session); the session's
    CSRF token."""
    response = await http.post(
        "/ui/login", data={"key": key, "csrf_token": await login_token(http), "next": "/ui"}
    )
    assert response.status_code == 303, response.text
    home = await http.get("/ui", follow_redirects=True)
    assert home.status_code == 200, home.text
    return csrf_of(home.text)
