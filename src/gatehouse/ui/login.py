"""Logging in and out, the landing page, and the static assets.

:func:`start_session` is how any login (a key here, single sign-on elsewhere)
turns an identity into a session cookie.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.config import Settings
from gatehouse.core.errors import (
    AuthenticationError,
    GatehouseError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
)
from gatehouse.gateway.auth_failures import LoginAttempt, client_address, login_target
from gatehouse.gateway.keys import parse_key
from gatehouse.server.http import error_headers
from gatehouse.server.routes.table import RouteSpec
from gatehouse.ui.nav import nav_items
from gatehouse.ui.pages import form, redirect, render, secured, session_of, ui_route
from gatehouse.ui.session import LOGIN_COOKIE, UiIdentity, role_for
from gatehouse.ui.state import ui_state


@dataclass(frozen=True, slots=True)
class LoginProvider:
    """Another way to log in, offered as a link on the login page (single sign-on)."""

    label: str
    path: str
    # Offered only when the settings turn it on (single sign-on needs a provider).
    enabled: Callable[[Settings], bool] = lambda settings: True


# Filled by the modules that offer one (gatehouse.ui.routes lists them).
LOGIN_PROVIDERS: list[LoginProvider] = []


def start_session(request: Request, response: Response, identity: UiIdentity) -> None:
    """Log ``identity`` in: set its session cookie on ``response`` (Secure over https)."""
    ui_state(request.scope).sessions.start(response, identity, secure=_https(request))


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


def _next(value: object) -> str:
    """Where to go after logging in: a dashboard path, never another site."""
    if isinstance(value, str) and value.startswith("/ui") and not value.startswith("/ui/login"):
        return value
    return "/ui"


async def login_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    state = ui_state(request.scope)
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(18)
    response = render(
        request,
        "login.html",
        {
            "error": error,
            "next": _next(request.query_params.get("next")),
            "login_token": state.sessions.login_token(nonce),
            "auth_enabled": state.sessions.auth_enabled,
            "login_providers": [p for p in LOGIN_PROVIDERS if p.enabled(state.settings)],
        },
        status_code=status,
    )
    response.set_cookie(
        LOGIN_COOKIE, nonce, path="/ui", secure=_https(request), httponly=True, samesite="strict"
    )
    return response


async def show_login(request: Request) -> Response:
    return await login_page(request)


async def log_in(request: Request) -> Response:
    """Check the submitted key (the CSRF check ran first) and start a session.

    With authentication on, each attempt is charged to the client's address and
    to the key it names before the key is checked, and given back when it
    succeeds (:mod:`gatehouse.gateway.auth_failures`): past the limits, 429."""
    values = await form(request)
    key = values.get("key")
    governance = request.app.state.gateway.governance
    attempt: LoginAttempt | None = None
    try:
        if governance is not None and governance.authenticator.enabled:
            target = login_target(key.strip() if isinstance(key, str) else "")
            attempt = await governance.failed_auth.login_attempt(
                client_address(request.scope), target
            )
        identity = await _identity(request, key)
    except RateLimitError as exc:
        response = await login_page(request, error=exc.message, status=429)
        response.headers.update(error_headers(exc))  # Retry-After
        return response
    except ServiceUnavailableError as exc:
        if attempt is not None:  # the key could not be checked: no failure of its own
            await governance.failed_auth.login_succeeded(attempt)
        return await login_page(request, error=exc.message, status=503)
    except GatehouseError:
        # One message whatever went wrong, as the API's 401 does.
        return await login_page(request, error="That key was not accepted.", status=401)
    if attempt is not None:
        await governance.failed_auth.login_succeeded(attempt)
    response = redirect(_next(values.get("next")))
    start_session(request, response, identity)
    return response


async def _identity(request: Request, key: object) -> UiIdentity:
    state = ui_state(request.scope)
    sessions = state.sessions
    governance = request.app.state.gateway.governance
    if governance is None or not governance.authenticator.enabled:
        return UiIdentity(kind="anonymous", subject="anonymous", role="admin", name="local user")
    if not isinstance(key, str) or not key.strip():
        raise AuthenticationError()
    key = key.strip()
    if sessions.matches_master(key):
        return sessions.master_identity()
    parsed = parse_key(key)
    if parsed is None:
        raise AuthenticationError()
    principal = await governance.authenticator.authenticate({"authorization": f"Bearer {key}"})
    cached = await governance.directory.key(parsed[0])
    if cached is None:
        raise AuthenticationError()
    record = cached.record
    return UiIdentity(
        kind="key",
        subject=record.id,
        role=role_for(principal),
        name=record.name,
        team=record.team,
        fingerprint=sessions.key_fingerprint(record.digest),
    )


async def log_out(request: Request) -> Response:
    """End the session on every replica (a copy of its cookie is refused from
    now on), then clear the cookie in this browser."""
    sessions = ui_state(request.scope).sessions
    governance = request.app.state.gateway.governance
    if governance is not None:
        await sessions.end_everywhere(session_of(request).data, governance.counters)
    response = redirect("/ui/login")
    sessions.end(response, secure=_https(request))
    return response


async def home(request: Request) -> Response:
    items = nav_items(session_of(request))
    if items:
        return redirect(items[0].path)
    return render(request, "home.html")


async def static_file(request: Request) -> Response:
    """A file of the package's ``static/`` folder; nothing else is reachable."""
    asset = ui_state(request.scope).assets.get(request.path_params["name"])
    if asset is None:
        raise NotFoundError(f"No asset {request.path_params['name']!r}.")
    versioned = request.query_params.get("v") == asset.version
    response = Response(asset.body, media_type=asset.media_type)
    response.headers["cache-control"] = (
        "public, max-age=31536000, immutable" if versioned else "no-cache"
    )
    return secured(response)


ROUTES: list[RouteSpec] = [
    ui_route("GET", "/ui", home, "Dashboard: the first page this session may see", role="viewer"),
    ui_route("GET", "/ui/login", show_login, "Dashboard login page", role="public"),
    ui_route("POST", "/ui/login", log_in, "Log in to the dashboard with a key", role="public"),
    ui_route("POST", "/ui/logout", log_out, "Log out of the dashboard", role="viewer"),
    ui_route("GET", "/ui/static/{name:path}", static_file, "Dashboard assets", role="public"),
]
