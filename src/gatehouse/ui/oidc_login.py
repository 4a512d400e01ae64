"""The single sign-on routes of the dashboard (the protocol is in :mod:`gatehouse.ui.oidc`).

    GET /ui/oidc/login?next=/ui/...   a new sign-in: to the provider, with a signed
                                      cookie holding its state, nonce and PKCE verifier
    GET /ui/oidc/callback             the provider's answer: checked, then a session
                                      for the user's role (:func:`start_session`)

Both answer 404 while ``ui.oidc`` is not configured. The pending-login cookie
is ``SameSite=Lax``: the callback is a top-level navigation coming from the
provider's site, which a ``Strict`` cookie would not reach.
"""

from __future__ import annotations

import hashlib
import logging
import time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gatehouse.core.config import Settings
from gatehouse.core.errors import NotFoundError, RateLimitError
from gatehouse.gateway.auth_failures import client_address
from gatehouse.server.http import error_headers
from gatehouse.server.routes.table import RouteSpec
from gatehouse.ui.login import LoginProvider, login_page, start_session
from gatehouse.ui.oidc import OidcClient, OidcRefused, OidcUnavailable, PendingLogin
from gatehouse.ui.pages import render, ui_route
from gatehouse.ui.session import UiIdentity, session_secret
from gatehouse.ui.state import ui_state

log = logging.getLogger("gatehouse.ui.oidc")

PENDING_COOKIE = "gatehouse_oidc"
CALLBACK = "/ui/oidc/callback"
PROVIDER = LoginProvider(
    label="Sign in with single sign-on",
    path="/ui/oidc/login",
    enabled=lambda settings: settings.ui.oidc.enabled,
)


def _client(request: Request) -> OidcClient:
    """The app's client (its discovery and JWKS caches), built on first use."""
    state = request.app.state
    found: OidcClient | None = getattr(state, "ui_oidc", None)
    if found is None:
        settings: Settings = ui_state(request.scope).settings
        if not settings.ui.oidc.enabled:
            raise NotFoundError("Single sign-on is not configured.")
        found = state.ui_oidc = OidcClient(settings.ui.oidc)
    return found


def _cookie_key(request: Request) -> bytes:
    # The session secret, bound to this purpose: same on every replica that shares it.
    secret = session_secret(ui_state(request.scope).settings)
    return hashlib.sha256(b"gatehouse-ui-oidc-pending\0" + secret).digest()


def _redirect_uri(request: Request, client: OidcClient) -> str:
    configured = client.settings.redirect_uri
    return configured or str(request.base_url).rstrip("/") + CALLBACK


async def start(request: Request) -> Response:
    client = _client(request)
    target = _next(request.query_params.get("next"))
    try:
        pending, url = await client.start(redirect_uri=_redirect_uri(request, client), next=target)
    except OidcUnavailable as exc:
        log.warning("oidc sign-in cannot start: %s", exc.reason)
        return await login_page(request, error=exc.message, status=503)
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(
        PENDING_COOKIE,
        pending.seal(_cookie_key(request)),
        max_age=client.settings.login_timeout_seconds,
        path="/ui/oidc",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return response


async def callback(request: Request) -> Response:
    """Check the provider's answer and start a session. A callback that gets as
    far as the token endpoint is a login attempt of the client's address
    (:mod:`gatehouse.gateway.auth_failures`), given back unless it was refused:
    junk codes cannot make this server call the provider without bound."""
    client = _client(request)
    query = request.query_params
    governance = request.app.state.gateway.governance
    limiter = None if governance is None else governance.failed_auth
    attempt = None
    try:
        pending = PendingLogin.unseal(
            _cookie_key(request), request.cookies.get(PENDING_COOKIE), now=time.time()
        )
        if "error" in query:  # the user said no, or the provider refused
            raise OidcRefused(f"provider answered error={query['error']!r}")
        if limiter is not None:
            attempt = await limiter.login_attempt(client_address(request.scope), None)
        identity = await client.finish(
            pending,
            state=query.get("state"),
            code=query.get("code"),
            redirect_uri=_redirect_uri(request, client),
        )
    except RateLimitError as exc:
        response = await login_page(request, error=exc.message, status=429)
        response.headers.update(error_headers(exc))  # Retry-After
        response.delete_cookie(PENDING_COOKIE, path="/ui/oidc")
        return response
    except (OidcRefused, OidcUnavailable) as exc:
        log.warning("oidc sign-in refused: %s", exc.reason)
        if limiter is not None and attempt is not None and isinstance(exc, OidcUnavailable):
            await limiter.login_succeeded(attempt)  # the provider's fault, not the client's
        status = exc.http_status
        response = await login_page(request, error=exc.message, status=status)
        response.delete_cookie(PENDING_COOKIE, path="/ui/oidc")
        return response
    if limiter is not None and attempt is not None:
        await limiter.login_succeeded(attempt)
    log.info("oidc sign-in: %s as %s", identity.subject, identity.role)
    # A page that moves on by itself, not a redirect: see oidc_signed_in.html.
    response = render(request, "oidc_signed_in.html", {"next": pending.next, "name": identity.name})
    response.delete_cookie(PENDING_COOKIE, path="/ui/oidc")
    start_session(
        request,
        response,
        UiIdentity(
            kind="oidc",
            subject=identity.subject,
            role=identity.role,
            name=identity.name,
            team=identity.team,
        ),
    )
    return response


def _next(value: str | None) -> str:
    """Where to land after signing in: a dashboard page, never another site."""
    if value and value.startswith("/ui") and not value.startswith(("/ui/login", "/ui/oidc")):
        return value
    return "/ui"


ROUTES: list[RouteSpec] = [
    ui_route("GET", PROVIDER.path, start, "Sign in to the dashboard through OIDC", role="public"),
    ui_route("GET", CALLBACK, callback, "OIDC: back from the provider", role="public"),
]
